"""The edge and cloud networks. Input normalisation is inside the graph, so the service only resamples:
- pose layouts (a confidence channel): centre on the visible points, scale by their spread, zero missing points;
- other layouts: per-channel standardisation with the training set's mean and std.
Both networks also see the frame-to-frame velocity of the normalised input.
"""
import torch
from torch import nn


class PoseNorm(nn.Module):
    def __init__(self, conf_channel):
        super().__init__()
        self.conf_channel = conf_channel

    def forward(self, x):  # x: (N, T, J, C)
        c = self.conf_channel
        conf = x[..., c:c + 1]
        mask = (conf > 0).float()
        coords = torch.cat([x[..., :c], x[..., c + 1:]], dim=-1)
        count = mask.sum(dim=(1, 2), keepdim=True).clamp(min=1.0)
        centre = (coords * mask).sum(dim=(1, 2), keepdim=True) / count
        spread = (((coords - centre) ** 2) * mask).sum(dim=(1, 2), keepdim=True) / count
        scale = torch.sqrt(spread.sum(dim=-1, keepdim=True) + 1e-6)
        return torch.cat([(coords - centre) / scale * mask, conf], dim=-1)


class ChannelNorm(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x):
        return (x - self.mean) / self.std


def with_velocity(x):
    """(N, T, J, C) -> (N, 2*J*C, T): positions and their frame-to-frame differences, channels first."""
    n, t = x.shape[0], x.shape[1]
    flat = x.reshape(n, t, -1)
    vel = torch.cat([torch.zeros_like(flat[:, :1]), flat[:, 1:] - flat[:, :-1]], dim=1)
    return torch.cat([flat, vel], dim=2).transpose(1, 2)


class EdgeNet(nn.Module):
    """Small temporal conv net for WASM: three 1D convolutions, pooled, a 64-wide embedding, a linear head."""

    def __init__(self, joints, channels, classes, norm, width=64, embedding=64):
        super().__init__()
        self.norm = norm
        cin = 2 * joints * channels
        self.body = nn.Sequential(
            nn.Conv1d(cin, width, 5, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv1d(width, width + 32, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.embed = nn.Sequential(nn.Linear(width + 32, embedding), nn.ReLU())
        self.head = nn.Linear(embedding, classes)

    def forward(self, x):
        h = self.body(with_velocity(self.norm(x))).mean(dim=2)
        e = self.embed(h)
        return self.head(e), e


class Block(nn.Module):
    def __init__(self, width, dilation, dropout):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Dropout(dropout),
            nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation), nn.BatchNorm1d(width),
        )

    def forward(self, x):
        return torch.relu(x + self.net(x))


class CloudTCN(nn.Module):
    """Temporal convolution network with dilated residual blocks, mean+max pooled, an MLP head."""

    def __init__(self, joints, channels, classes, norm, width=160, blocks=5, dropout=0.2):
        super().__init__()
        self.norm = norm
        cin = 2 * joints * channels
        self.stem = nn.Sequential(nn.Conv1d(cin, width, 3, padding=1), nn.BatchNorm1d(width), nn.ReLU())
        self.blocks = nn.Sequential(*[Block(width, 2 ** (i % 4), dropout) for i in range(blocks)])
        self.head = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, classes))

    def forward(self, x):
        h = self.blocks(self.stem(with_velocity(self.norm(x))))
        return self.head(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))


class CloudTransformer(nn.Module):
    """Small transformer encoder over frames, with learned positions, mean pooled."""

    def __init__(self, joints, channels, classes, norm, window, width=128, layers=4, heads=4, dropout=0.1):
        super().__init__()
        self.norm = norm
        self.proj = nn.Linear(2 * joints * channels, width)
        self.pos = nn.Parameter(torch.zeros(1, window, width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, classes))

    def forward(self, x):
        h = self.proj(with_velocity(self.norm(x)).transpose(1, 2)) + self.pos
        return self.head(self.encoder(h).mean(dim=1))


def count_flops(model, example):
    """Floating-point operations of one forward pass (2 x multiply-accumulates of convolutions and linear layers,
    attention matmuls included), per sequence."""
    total = [0]

    def conv_hook(m, inp, out):
        total[0] += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0]

    def linear_hook(m, inp, out):
        total[0] += 2 * out.numel() * m.in_features

    def attn_hook(m, inp, out):
        q = inp[0]
        n, t, d = q.shape
        total[0] += 2 * 2 * n * t * t * d  # scores and weighted sum (projections counted by their Linear layers)
        total[0] += 2 * 3 * n * t * d * d  # the q, k, v projections, held as a raw parameter (out_proj is a Linear)

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.MultiheadAttention):
            hooks.append(m.register_forward_hook(attn_hook))
    with torch.no_grad():
        model(example)
    for h in hooks:
        h.remove()
    return total[0] // example.shape[0]
