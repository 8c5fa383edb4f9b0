"""Stored pixel values of one frame, as fast as the file allows.

* Native little-endian pixel data (the usual PACS export): the bytes are read straight from the
  offset found during the scan into the caller's buffer (no header parsing, no intermediate copy).
* Compressed pixel data: pydicom's decoders (Pillow for JPEG/JPEG 2000, pyjpegls for JPEG-LS, its
  own RLE); when pydicom has no plugin for a transfer syntax (e.g. JPEG Lossless, common in CT
  exports) we fall back to imagecodecs, which is already a dependency.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable

import numpy as np
import pydicom
from pydicom.encaps import get_frame
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from palmares_desktop.core.dicom.errors import DicomError
from palmares_desktop.core.dicom.headers import InstanceHeader, file_unchanged

log = logging.getLogger(__name__)


def _imagecodecs_decoder(transfer_syntax: str) -> Callable[[bytes], np.ndarray] | None:
    try:
        import imagecodecs
    except ImportError:  # pragma: no cover - imagecodecs is a declared dependency
        return None
    by_syntax = {
        "1.2.840.10008.1.2.4.57": "ljpeg_decode",  # JPEG Lossless, process 14
        "1.2.840.10008.1.2.4.70": "ljpeg_decode",  # JPEG Lossless, first-order prediction
        "1.2.840.10008.1.2.4.50": "jpeg8_decode",
        "1.2.840.10008.1.2.4.51": "jpeg8_decode",
        "1.2.840.10008.1.2.4.80": "jpegls_decode",
        "1.2.840.10008.1.2.4.81": "jpegls_decode",
        "1.2.840.10008.1.2.4.90": "jpeg2k_decode",
        "1.2.840.10008.1.2.4.91": "jpeg2k_decode",
        "1.2.840.10008.1.2.4.201": "htj2k_decode",
        "1.2.840.10008.1.2.4.202": "htj2k_decode",
        "1.2.840.10008.1.2.4.203": "htj2k_decode",
        "1.2.840.10008.1.2.5": "dicomrle_decode",
    }
    name = by_syntax.get(transfer_syntax)
    return getattr(imagecodecs, name, None) if name else None


def _pydicom_can_decode(transfer_syntax: str) -> bool:
    try:
        return get_decoder(UID(transfer_syntax)).is_available
    except (NotImplementedError, ValueError):
        return False


def can_decode(transfer_syntax: str) -> bool:
    """Whether some installed decoder can read pixel data in this transfer syntax."""
    uid = UID(transfer_syntax)
    if not transfer_syntax or not uid.is_encapsulated:
        return True
    return _pydicom_can_decode(transfer_syntax) or _imagecodecs_decoder(transfer_syntax) is not None


def stored_dtype(header: InstanceHeader) -> np.dtype:
    if header.bits_allocated not in (8, 16, 32):
        raise DicomError(f"{header.bits_allocated}-bit pixels are not supported for volumes.")
    kind = "i" if header.pixel_representation == 1 else "u"
    return np.dtype(f"<{kind}{header.bits_allocated // 8}")


class FrameReader:
    """Reads stored values of frames; keeps the last decoded file so the frames of one multi-frame
    object are not parsed again for each frame."""

    def __init__(self) -> None:
        self._cached_path = None
        self._cached_dataset = None

    def read(self, header: InstanceHeader, frame_index: int | None, out: np.ndarray) -> None:
        """Fill `out` (rows × cols, dtype = stored_dtype(header)) with the frame's stored values,
        sign-extended / masked to BitsStored."""
        if not (header.pixel_value_offset is not None and self._read_native(header, frame_index, out)):
            out[...] = self._decode(header, frame_index)
        _apply_bits_stored(out, header)

    @staticmethod
    def _read_native(header: InstanceHeader, frame_index: int | None, out: np.ndarray) -> bool:
        if sys.byteorder != "little" or not file_unchanged(header):
            return False  # let pydicom re-parse a file that changed since the scan
        offset = header.pixel_value_offset + (frame_index or 0) * out.nbytes
        try:
            with open(header.path, "rb", buffering=0) as fp:
                fp.seek(offset)
                got = fp.readinto(memoryview(out).cast("B"))
        except OSError as exc:
            raise DicomError(f"Cannot read {header.path}: {exc.strerror or exc}.") from exc
        if got != out.nbytes:
            raise DicomError(f"{header.path} is truncated: its pixel data ends early.")
        return True

    def _dataset(self, header: InstanceHeader):
        if self._cached_path != header.path:
            self._cached_path, self._cached_dataset = None, None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._cached_dataset = pydicom.dcmread(header.path)
            except Exception as exc:  # noqa: BLE001 - any parse failure is bad input here
                raise DicomError(f"Cannot read {header.path}: {exc}.") from exc
            self._cached_path = header.path
        return self._cached_dataset

    def _decode(self, header: InstanceHeader, frame_index: int | None) -> np.ndarray:
        ds = self._dataset(header)
        syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
        index = frame_index or 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if _pydicom_can_decode(syntax) or not UID(syntax).is_encapsulated:
                    if header.number_of_frames > 1:
                        frame, _ = get_decoder(UID(syntax)).as_array(ds, index=index, raw=True)
                    else:
                        frame = ds.pixel_array
                else:
                    decode = _imagecodecs_decoder(syntax)
                    if decode is None:
                        raise DicomError(
                            f"No installed decoder reads pixel data compressed as '{UID(syntax).name}' "
                            f"({header.path})."
                        )
                    fragment = get_frame(ds.PixelData, index, number_of_frames=header.number_of_frames)
                    frame = np.asarray(decode(fragment))
        except DicomError:
            raise
        except Exception as exc:  # noqa: BLE001 - decoder failures are bad input for the user
            # The decoder's own text ("cannot identify image file <_io.BytesIO ...>") means nothing
            # to a coordinator: say what it means, keep the details in the log.
            log.warning("decoding %s failed: %s", header.path, exc)
            raise DicomError(
                f"Cannot decode the pixel data of {header.path}: the compressed image is damaged "
                f"(transfer syntax '{UID(syntax).name}')."
            ) from exc
        frame = np.asarray(frame)
        if frame.shape != (header.rows, header.cols):
            raise DicomError(
                f"{header.path}: decoded image is {frame.shape}, expected {header.rows} x {header.cols}."
            )
        dtype = stored_dtype(header)
        if frame.dtype.itemsize == dtype.itemsize and frame.dtype.kind in "iu":
            return frame.view(dtype)  # codecs return the bit pattern; signedness is ours to apply
        return frame.astype(dtype)


def _apply_bits_stored(values: np.ndarray, header: InstanceHeader) -> None:
    """Ignore bits above BitsStored (old files put overlays there) and sign-extend signed values."""
    unused = header.bits_allocated - header.bits_stored
    if unused <= 0 or unused >= header.bits_allocated:
        return
    if header.pixel_representation == 1:
        np.left_shift(values, unused, out=values)
        np.right_shift(values, unused, out=values)  # arithmetic shift on signed ints
    else:
        np.bitwise_and(values, (1 << header.bits_stored) - 1, out=values)
