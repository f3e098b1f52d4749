from zsseg.classify.checkpoint import ensemble_seen


def test_ensemble_seen_adds_only_classes_that_got_pseudo_labels() -> None:
    assert ensemble_seen({"seen": None}) is None
    assert ensemble_seen({"seen": ["cat", "dog"]}) == ["cat", "dog"]
    meta = {"seen": ["cat", "dog"], "pseudo": {"regions": {"cow": 3, "sheep": 0, "dog": 1}}}
    assert ensemble_seen(meta) == ["cat", "dog", "cow"]
