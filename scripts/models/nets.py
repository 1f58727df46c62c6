"""The edge and cloud networks. Input normalisation is inside the graph, so the service only resamples:
- point layouts (2D/3D joints, with or without a confidence channel): PoseNorm (centre, canonical facing, body
  size), chosen per layout in layouts.py;
- sensor layouts: per-channel standardisation with the training set's mean and std.
Every network also sees the frame-to-frame velocity of the normalised input. The cloud networks: a temporal
convolution network (TCN), a transformer, and a spatial-temporal graph network over the layout's bone graph (STGCN).
"""
import torch
from torch import nn


def _one_hot(joints, index):
    """(J, len(index)) with a 1 at (index[k], k): `x @ m` picks those joints along x's last axis."""
    m = torch.zeros(joints, len(index))
    for k, j in enumerate(index):
        m[j, k] = 1.0
    return m


class PoseNorm(nn.Module):
    """Per-sequence invariance for point layouts, inside the graph (the service only resamples):
    - a point is visible where its confidence is > 0 or, without a confidence channel, where it is not all zeros;
    - centre: the mean of the root joints over the visible frames ("root"; falls back to "mean" for a sequence
      whose root is never visible), the mean of all visible points ("mean"), or none;
    - canonical facing (3D): rotate about the vertical axis so that the body's mean left-to-right direction (summed
      over the left/right pairs and the frames) points along +x;
    - scale: divide by four mean bone lengths (about a body height; "body"), or none.
    Missing points come out as zeros; the confidence channel passes through.

    The graph works channels first, (N, C, T, J), and picks joints with products by constant one-hot matrices:
    onnxruntime (native and WASM) runs an element-wise operator whose innermost axis is 1 to 3 long, as (N, T, J, C)
    makes it, some 10-20 times slower per number than one over a long axis, and a Gather on the joint axis copies
    one number at a time. The same arithmetic written (N, T, J, C) took 2-6 times as long (scripts/models/README.md)."""

    def __init__(self, conf_channel, channels, joints, root=(), bones=(), pairs=(), centre="mean", scale="body",
                 facing=False, vertical=1):
        super().__init__()
        self.conf_channel = conf_channel
        self.channels = channels
        self.centre, self.scale, self.facing, self.vertical = centre, scale, facing, vertical
        self.keep = [i for i in range(channels) if i != conf_channel]
        bones = list(bones) or [(0, 0)]
        pairs = list(pairs) or [(0, 0)]
        self.register_buffer("root_pick", _one_hot(joints, list(root) or [0]))
        self.register_buffer("bone_a", _one_hot(joints, [a for a, _ in bones]))
        self.register_buffer("bone_b", _one_hot(joints, [b for _, b in bones]))
        self.register_buffer("bone_diff", self.bone_a - self.bone_b)
        self.register_buffer("left", _one_hot(joints, [a for a, _ in pairs]))
        self.register_buffer("right", _one_hot(joints, [b for _, b in pairs]))
        self.register_buffer("lateral", self.right - self.left)
        self.has_root = len(root) > 0

    def forward(self, x):  # x: (N, T, J, C)
        xc = x.permute(0, 3, 1, 2)  # (N, C, T, J)
        keep = self.keep
        if keep == list(range(keep[0], keep[-1] + 1)):
            coords = xc[:, keep[0]:keep[-1] + 1]
        else:
            coords = torch.cat([xc[:, i:i + 1] for i in keep], dim=1)
        if self.conf_channel is not None:
            c = self.conf_channel
            conf = xc[:, c:c + 1]
            mask = torch.sign(torch.relu(conf))  # 1 where the confidence is > 0, else 0
        else:
            mask = torch.sign(coords.abs().sum(dim=1, keepdim=True))  # 1 where the point is not all zeros
        count = mask.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)
        centre = (coords * mask).sum(dim=(2, 3), keepdim=True) / count
        if self.centre == "root" and self.has_root:
            rm = mask @ self.root_pick
            rc = coords @ self.root_pick
            rcount = rm.sum(dim=(2, 3), keepdim=True)
            rcentre = (rc * rm).sum(dim=(2, 3), keepdim=True) / rcount.clamp(min=1.0)
            centre = torch.where(rcount > 0, rcentre, centre)
        if self.centre != "none":
            coords = coords - centre
        if self.facing:
            v, (a, b) = self.vertical, [i for i in range(3) if i != self.vertical]
            both = (mask @ self.left) * (mask @ self.right)
            lateral = ((coords @ self.lateral) * both).sum(dim=(2, 3), keepdim=True)  # (N, 3, 1, 1)
            la, lb = lateral[:, a:a + 1] + 1e-6, lateral[:, b:b + 1]
            norm = torch.sqrt(la * la + lb * lb)
            cos, sin = la / norm, lb / norm
            pa, pv, pb = coords[:, a:a + 1], coords[:, v:v + 1], coords[:, b:b + 1]
            ra, rb = cos * pa + sin * pb, cos * pb - sin * pa
            parts = {a: ra, v: pv, b: rb}
            coords = torch.cat([parts[0], parts[1], parts[2]], dim=1)
        if self.scale == "body":
            both = (mask @ self.bone_a) * (mask @ self.bone_b)
            d = coords @ self.bone_diff
            length = torch.sqrt((d * d).sum(dim=1, keepdim=True) + 1e-12)
            bcount = both.sum(dim=(2, 3), keepdim=True)
            mean_len = (length * both).sum(dim=(2, 3), keepdim=True) / bcount.clamp(min=1.0)
            spread = torch.sqrt((coords * coords * mask).sum(dim=(1, 2, 3), keepdim=True) / count + 1e-6) / 2.0
            size = torch.where(bcount > 0, 4.0 * mean_len, spread)
            coords = coords / (size + 1e-6)
        coords = coords * mask
        out = coords if self.conf_channel is None else torch.cat([coords, conf], dim=1)
        return out.permute(0, 2, 3, 1)


class ChannelNorm(nn.Module):
    """Sensor layouts: per-channel standardisation with the training set's mean and std (N, T, J, C). Options for
    3-axis sensors, each appended as channels of every sensor (N, T, J, C + extra):
    - `magnitude` (training mean and std per sensor): each sensor's length |v| per frame, standardised; it does not
      move when the device is worn turned;
    - `gravity` (a 0/1 flag per sensor, 1 for accelerometers): the low-passed direction of the sensor's signal, its
      window mean over its length (for an accelerometer at rest, the direction of gravity in the device's frame, i.e.
      the device's orientation), 0 for other sensors.
    The constants are repeated over the window's `window` frames, (T, J, C): onnxruntime broadcasts a (J, C)
    constant over (N, T) in runs of J * C numbers, a few times slower than one run per sequence (PoseNorm's note)."""

    def __init__(self, mean, std, window, magnitude=None, gravity=None):
        super().__init__()

        def per_frame(a):
            a = torch.as_tensor(a, dtype=torch.float32)
            return a.unsqueeze(0).repeat(window, *([1] * a.dim()))

        self.register_buffer("mean", per_frame(mean))
        self.register_buffer("std", per_frame(std))
        self.magnitude = magnitude is not None
        if self.magnitude:
            self.register_buffer("mag_mean", per_frame(torch.as_tensor(magnitude[0], dtype=torch.float32)[:, None]))
            self.register_buffer("mag_std", per_frame(torch.as_tensor(magnitude[1], dtype=torch.float32)[:, None]))
        self.gravity = gravity is not None
        if self.gravity:
            self.register_buffer("grav_mask", torch.as_tensor(gravity, dtype=torch.float32)[:, None])

    def extra_channels(self):
        return (1 if self.magnitude else 0) + (3 if self.gravity else 0)

    def forward(self, x):
        parts = [(x - self.mean) / self.std]
        if self.magnitude:
            mag = torch.sqrt((x * x).sum(dim=-1, keepdim=True) + 1e-12)
            parts.append((mag - self.mag_mean) / self.mag_std)
        if self.gravity:
            g = x.mean(dim=1, keepdim=True)
            g = g / torch.sqrt((g * g).sum(dim=-1, keepdim=True) + 1e-12)
            parts.append((g * self.grav_mask).expand(-1, x.shape[1], -1, -1))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


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

    def __init__(self, joints, channels, classes, norm, width=160, blocks=5, dropout=0.2, stride=1):
        super().__init__()
        self.norm = norm
        cin = 2 * joints * channels
        # A strided stem for long windows (e.g. 128 samples of 50 Hz sensors) keeps the blocks at about 32 steps.
        k = max(3, 2 * stride + 1)
        self.stem = nn.Sequential(nn.Conv1d(cin, width, k, stride=stride, padding=k // 2), nn.BatchNorm1d(width),
                                  nn.ReLU())
        self.blocks = nn.Sequential(*[Block(width, 2 ** (i % 4), dropout) for i in range(blocks)])
        self.head = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, classes))

    def forward(self, x):
        h = self.blocks(self.stem(with_velocity(self.norm(x))))
        return self.head(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))


class CloudEnsemble(nn.Module):
    """Members trained apart (other seeds, other budgets), answering together: the mean of their log-probabilities,
    a logits vector (its softmax is the members' normalised geometric mean)."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x):
        return torch.stack([torch.log_softmax(m(x), dim=1) for m in self.members]).mean(dim=0)


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


def graph_adjacency(joints, bones):
    """The symmetric-normalised adjacency with self loops, D^-1/2 (A + I) D^-1/2, of a bone graph (J, J)."""
    a = torch.eye(joints)
    for i, j in bones:
        a[i, j] = a[j, i] = 1.0
    d = a.sum(dim=1).rsqrt()
    return d[:, None] * a * d[None, :]


class GraphBlock(nn.Module):
    """One ST-GCN unit: a spatial graph convolution (fixed bone-graph adjacency plus a learned one, initialised at
    zero, as in adaptive GCNs) followed by a temporal convolution, both with batch norm, and a residual."""

    def __init__(self, cin, cout, adjacency, stride=1, kernel=9, dropout=0.1):
        super().__init__()
        self.register_buffer("adj", adjacency)
        self.learned = nn.Parameter(torch.zeros_like(adjacency))
        self.spatial = nn.Conv2d(cin, cout, 1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.temporal = nn.Sequential(
            nn.Conv2d(cout, cout, (kernel, 1), stride=(stride, 1), padding=(kernel // 2, 0)), nn.BatchNorm2d(cout),
            nn.Dropout(dropout))
        if cin == cout and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=(stride, 1)), nn.BatchNorm2d(cout))

    def forward(self, x):  # (N, C, T, J)
        h = torch.matmul(self.spatial(x), self.adj + self.learned)
        h = self.temporal(torch.relu(self.bn1(h)))
        return torch.relu(h + self.residual(x))


class CloudSTGCN(nn.Module):
    """Spatial-temporal graph network (ST-GCN family) over the layout's bone graph: per joint, the normalised
    position and velocity; graph blocks widening as time is strided; mean pooled over time and joints."""

    def __init__(self, joints, channels, classes, norm, bones, widths=(64, 64, 128, 128), strides=(1, 1, 2, 1),
                 kernel=9, dropout=0.1, window=32):
        super().__init__()
        self.norm = norm
        adjacency = graph_adjacency(joints, bones)
        first = max(1, window // 48)  # long windows: stride time early
        self.data_bn = nn.BatchNorm1d(2 * channels * joints)
        blocks, cin = [], 2 * channels
        for i, (w, s) in enumerate(zip(widths, strides)):
            blocks.append(GraphBlock(cin, w, adjacency, stride=s * (first if i == 0 else 1), kernel=kernel,
                                     dropout=dropout))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, classes))
        self.joints, self.channels = joints, channels

    def forward(self, x):  # (N, T, J, C)
        x = self.norm(x)
        n, t, j, c = x.shape[0], x.shape[1], self.joints, self.channels
        vel = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)
        h = torch.cat([x, vel], dim=3)  # (N, T, J, 2C)
        h = self.data_bn(h.reshape(n, t, j * 2 * c).transpose(1, 2)).reshape(n, j, 2 * c, t)
        h = self.blocks(h.permute(0, 2, 3, 1))  # (N, 2C, T, J)
        return self.head(h.mean(dim=(2, 3)))


def count_flops(model, example):
    """Floating-point operations of one forward pass (2 x multiply-accumulates of convolutions and linear layers,
    attention matmuls included), per sequence."""
    total = [0]

    def conv_hook(m, inp, out):
        k = 1
        for v in m.kernel_size:
            k *= v
        total[0] += 2 * out.numel() * (m.in_channels // m.groups) * k

    def matmul_hook(m, inp, out):  # the graph convolution's (C, T, J) x (J, J) product
        total[0] += 2 * out.numel() * m.adj.shape[0]

    def linear_hook(m, inp, out):
        total[0] += 2 * out.numel() * m.in_features

    def attn_hook(m, inp, out):
        q = inp[0]
        n, t, d = q.shape
        total[0] += 2 * 2 * n * t * t * d  # scores and weighted sum (projections counted by their Linear layers)
        total[0] += 2 * 3 * n * t * d * d  # the q, k, v projections, held as a raw parameter (out_proj is a Linear)

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, GraphBlock):
            hooks.append(m.spatial.register_forward_hook(lambda mod, i, o, gb=m: matmul_hook(gb, i, o)))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.MultiheadAttention):
            hooks.append(m.register_forward_hook(attn_hook))
    with torch.no_grad():
        model(example)
    for h in hooks:
        h.remove()
    return total[0] // example.shape[0]
