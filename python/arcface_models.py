"""PyTorch definitions of the toolkit's backbones and margin heads, with the same module and
parameter names as the C++ library, so state dicts move between the two unchanged.

A comparison and interoperability tool (benchmarks, ONNX export, parity fixtures), never a
dependency of the toolkit.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


# --- seed 000's resnet_face (arcface-pytorch models/resnet.py) ---

class SEBlock(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction), nn.PReLU(),
                                nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def forward(self, x):
        w = self.fc(x.mean((2, 3)))
        return x * w.view(x.size(0), x.size(1), 1, 1)


class IRBlock(nn.Module):
    def __init__(self, inplanes, planes, stride, use_se):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv3x3(inplanes, inplanes)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.prelu = nn.PReLU()
        self.conv2 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
        self.se = SEBlock(planes) if use_se else None

    def forward(self, x):
        out = self.prelu(self.bn1(self.conv1(self.bn0(x))))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        out = out + (self.downsample(x) if self.downsample is not None else x)
        return self.prelu(out)


class ResNetFace(nn.Module):
    def __init__(self, layers, input_size=128, channels=1, embedding_dim=512, use_se=False,
                 dropout=0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU()
        self.maxpool = nn.MaxPool2d(2, 2)
        inplanes = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for b in range(n):
                blocks.append(IRBlock(inplanes, planes, 2 if b == 0 and i > 0 else 1, use_se))
                inplanes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.bn4 = nn.BatchNorm2d(512)
        self.dropout = nn.Dropout(dropout)
        side = input_size // 16
        self.fc5 = nn.Linear(512 * side * side, embedding_dim)
        self.bn5 = nn.BatchNorm1d(embedding_dim)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_normal_(m.weight)

    def forward(self, x):
        x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn4(x))
        return self.bn5(self.fc5(x.flatten(1)))


# --- insightface IR-ResNet (arcface_torch backbones/iresnet.py) ---

class IBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.prelu(self.bn2(self.conv1(self.bn1(x))))
        out = self.bn3(self.conv2(out))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    def __init__(self, layers, input_size=112, channels=3, embedding_dim=512, dropout=0.0):
        super().__init__()
        self.conv1 = conv3x3(channels, 64)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU(64)
        inplanes = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for b in range(n):
                blocks.append(IBasicBlock(inplanes, planes, 2 if b == 0 else 1))
                inplanes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.bn2 = nn.BatchNorm2d(512)
        self.dropout = nn.Dropout(dropout)
        side = input_size // 16
        self.fc = nn.Linear(512 * side * side, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)
        self.features.weight.requires_grad = False

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn2(x).flatten(1))
        return self.features(self.fc(x))


# --- insightface MobileFaceNet (arcface_torch backbones/mobilefacenet.py) ---

class Layers(nn.Module):
    def __init__(self, *modules, residual=False):
        super().__init__()
        self.layers = nn.Sequential(*modules)
        self.residual = residual

    def forward(self, x):
        y = self.layers(x)
        return x + y if self.residual else y


def conv_block(cin, cout, k=1, s=1, p=0, g=1):
    return Layers(nn.Conv2d(cin, cout, k, s, p, groups=g, bias=False), nn.BatchNorm2d(cout),
                  nn.PReLU(cout))


def linear_block(cin, cout, k=1, s=1, p=0, g=1):
    return Layers(nn.Conv2d(cin, cout, k, s, p, groups=g, bias=False), nn.BatchNorm2d(cout))


def depth_wise(cin, cout, residual, stride, groups):
    return Layers(conv_block(cin, groups), conv_block(groups, groups, 3, stride, 1, groups),
                  linear_block(groups, cout), residual=residual)


def residual(c, n, groups):
    return Layers(*[depth_wise(c, c, True, 1, groups) for _ in range(n)])


class MobileFaceNet(nn.Module):
    def __init__(self, input_size=112, channels=3, embedding_dim=512, dropout=0.0):
        super().__init__()
        self.layers = nn.ModuleList([
            conv_block(channels, 128, 3, 2, 1), conv_block(128, 128, 3, 1, 1, 64),
            depth_wise(128, 128, False, 2, 128), residual(128, 4, 128),
            depth_wise(128, 256, False, 2, 256), residual(256, 6, 256),
            depth_wise(256, 256, False, 2, 512), residual(256, 2, 256)])
        self.conv_sep = conv_block(256, 512)
        side = input_size // 16
        self.features = Layers(linear_block(512, 512, side, 1, 0, 512), nn.Flatten(),
                               nn.Linear(512, embedding_dim, bias=False),
                               nn.BatchNorm1d(embedding_dim))
        self.dropout = nn.Dropout(dropout)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.features(self.dropout(self.conv_sep(x)))


DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3)}


class BasicConv2d(nn.Module):
    """facenet-pytorch's conv (no bias) - BN (eps 1e-3) - ReLU."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _branch(*convs):
    return convs[0] if len(convs) == 1 else nn.Sequential(*convs)


class _Branches(nn.Module):
    """branch0, branch1, ... run side by side and concatenated."""

    def __init__(self, branches):
        super().__init__()
        self.count = len(branches)
        for i, b in enumerate(branches):
            self.add_module(f"branch{i}", b)

    def concat(self, x):
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.count)], 1)

    def forward(self, x):
        return self.concat(x)


class InceptionResidual(_Branches):
    """Block35 / Block17 / Block8: x + scale * conv2d(concat(branches)), then ReLU."""

    def __init__(self, branches, concat, channels, scale, relu=True):
        super().__init__(branches)
        self.conv2d = nn.Conv2d(concat, channels, 1)
        self.scale, self.relu = scale, relu

    def forward(self, x):
        out = x + self.scale * self.conv2d(self.concat(x))
        return F.relu(out) if self.relu else out


def _block35():
    B = BasicConv2d
    return InceptionResidual([B(256, 32, 1), _branch(B(256, 32, 1), B(32, 32, 3, 1, 1)),
                              _branch(B(256, 32, 1), B(32, 32, 3, 1, 1), B(32, 32, 3, 1, 1))],
                             96, 256, 0.17)


def _block17():
    B = BasicConv2d
    return InceptionResidual([B(896, 128, 1), _branch(B(896, 128, 1), B(128, 128, (1, 7), 1, (0, 3)),
                                                      B(128, 128, (7, 1), 1, (3, 0)))], 256, 896, 0.10)


def _block8(scale, relu):
    B = BasicConv2d
    return InceptionResidual([B(1792, 192, 1), _branch(B(1792, 192, 1), B(192, 192, (1, 3), 1, (0, 1)),
                                                       B(192, 192, (3, 1), 1, (1, 0)))],
                             384, 1792, scale, relu)


class InceptionResnetV1(nn.Module):
    """facenet-pytorch's module names; `logits` only when num_classes is given."""

    def __init__(self, channels=3, embedding_dim=512, dropout=0.6, num_classes=None):
        super().__init__()
        B = BasicConv2d
        self.conv2d_1a = B(channels, 32, 3, 2)
        self.conv2d_2a = B(32, 32, 3)
        self.conv2d_2b = B(32, 64, 3, 1, 1)
        self.maxpool_3a = nn.MaxPool2d(3, 2)
        self.conv2d_3b = B(64, 80, 1)
        self.conv2d_4a = B(80, 192, 3)
        self.conv2d_4b = B(192, 256, 3, 2)
        self.repeat_1 = nn.Sequential(*[_block35() for _ in range(5)])
        self.mixed_6a = _Branches([B(256, 384, 3, 2), _branch(B(256, 192, 1), B(192, 192, 3, 1, 1),
                                                              B(192, 256, 3, 2)), nn.MaxPool2d(3, 2)])
        self.repeat_2 = nn.Sequential(*[_block17() for _ in range(10)])
        self.mixed_7a = _Branches([_branch(B(896, 256, 1), B(256, 384, 3, 2)),
                                   _branch(B(896, 256, 1), B(256, 256, 3, 2)),
                                   _branch(B(896, 256, 1), B(256, 256, 3, 1, 1), B(256, 256, 3, 2)),
                                   nn.MaxPool2d(3, 2)])
        self.repeat_3 = nn.Sequential(*[_block8(0.20, True) for _ in range(5)])
        self.block8 = _block8(1.0, False)
        self.dropout = nn.Dropout(dropout)
        self.last_linear = nn.Linear(1792, embedding_dim, bias=False)
        self.last_bn = nn.BatchNorm1d(embedding_dim, eps=1e-3, momentum=0.1)
        if num_classes:
            self.logits = nn.Linear(embedding_dim, num_classes)

    def forward(self, x):
        for m in (self.conv2d_1a, self.conv2d_2a, self.conv2d_2b, self.maxpool_3a, self.conv2d_3b,
                  self.conv2d_4a, self.conv2d_4b, self.repeat_1, self.mixed_6a, self.repeat_2,
                  self.mixed_7a, self.repeat_3, self.block8):
            x = m(x)
        x = self.dropout(x.mean((2, 3)))
        return self.last_bn(self.last_linear(x))


def build_backbone(name, input_size=112, channels=3, embedding_dim=512, use_se=False, dropout=None):
    """The same names and defaults as arcface::make_backbone."""
    aliases = {"resnet18": "resnet_face18", "resnet34": "resnet_face34", "resnet50": "resnet_face50",
               "ir_resnet18": "iresnet18", "mbf": "mobilefacenet"}
    name = aliases.get(name, name)
    if name.startswith("resnet_face"):
        return ResNetFace(DEPTHS[int(name[11:])], input_size, channels, embedding_dim, use_se,
                          0.5 if dropout is None or dropout < 0 else dropout)
    if name.startswith("iresnet"):
        return IResNet(DEPTHS[int(name[7:])], input_size, channels, embedding_dim,
                       0.0 if dropout is None or dropout < 0 else dropout)
    if name in ("inception_resnet_v1", "inceptionresnetv1"):
        return InceptionResnetV1(channels, embedding_dim, 0.6 if dropout is None or dropout < 0 else dropout)
    if name == "mobilefacenet":
        return MobileFaceNet(input_size, channels, embedding_dim,
                             0.0 if dropout is None or dropout < 0 else dropout)
    raise ValueError(f"unknown backbone {name}")


class ArcMargin(nn.Module):
    """ArcFace logits, as arcface::MarginHead with type Arc."""

    def __init__(self, embedding_dim, num_classes, s=30.0, m=0.5, easy_margin=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        self.s, self.m, self.easy_margin = s, m, easy_margin

    def forward(self, x, labels):
        cosine = F.linear(F.normalize(x), F.normalize(self.weight))
        index = labels.view(-1, 1)
        target = cosine.gather(1, index)
        sine = torch.sqrt((1.0 - target * target).clamp(1e-12, 1.0))
        phi = target * math.cos(self.m) - sine * math.sin(self.m)
        if self.easy_margin:
            phi = torch.where(target > 0, phi, target)
        else:
            phi = torch.where(target > math.cos(math.pi - self.m), phi,
                              target - math.sin(math.pi - self.m) * self.m)
        return cosine.scatter(1, index, phi) * self.s


def preprocess_image(path, size, gray, mean, std):
    """arcface's load_image + normalisation: BGR decoded to RGB (or gray), resized to size x size
    (area when shrinking, bilinear when growing), (x/255 - mean) / std; a [C, H, W] tensor."""
    import cv2  # only here: the model definitions need no OpenCV
    import numpy as np

    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image '{path}'")
    if img.shape[0] != size:
        inter = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=inter)
    img = img[:, :, None] if gray else img[:, :, ::-1]
    a = np.float32(1.0 / (255.0 * std))
    b = np.float32(-mean / std)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)).astype(np.float32) * a + b)


def load_checkpoint_backbone(path):
    """A backbone of ours from an arcface checkpoint (torch.load reads it directly)."""
    ck = torch.load(path, map_location="cpu")
    o = ck["backbone_options"]
    model = build_backbone(o["name"], o["input_size"], o["channels"], o["embedding_dim"],
                           o["use_se"], o["dropout"])
    model.load_state_dict(ck["backbone_state_dict"], strict=True)
    return model.eval(), ck
