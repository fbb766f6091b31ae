"""Files in and out: images, audio (any format, resampled to 16 kHz mono) and mp4 with sound.

PyAV carries its own ffmpeg (libx264 + AAC), so no system ffmpeg is needed. Every writer
goes through :func:`atomic_output`: a crash or a bad input never leaves a half-written file
where the user expects a result.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .constants import SAMPLE_RATE
from .errors import MultiTalkInputError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp makes it private; the result is an ordinary file
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _require_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MultiTalkInputError(f"{what} file not found: {path} (check the path)")
    if path.stat().st_size == 0:
        raise MultiTalkInputError(f"{what} file is empty: {path} (give a non-empty {what} file)")
    return path


# ----------------------------------------------------------------------------- images


MAX_IMAGE_PIXELS = 40_000_000  # far above any bucket (1280x720 is 0.9 Mpx); a 40-Mpx RGB image is 120 MB
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 768_000


def read_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)``, turned upright by its EXIF orientation; a clear error for anything that
    is not a readable image. The pixel count is checked from the header, before decoding."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = _require_file(path, "image")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise MultiTalkInputError(
                    f"image {path} is {width}x{height} ({width * height / 1e6:.0f} Mpx), over "
                    f"the {max_pixels / 1e6:.0f}-Mpx limit; downscale it (the model sees at "
                    "most 1280x720)"
                )
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except MultiTalkInputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise MultiTalkInputError(f"not a readable image: {path} ({err}); give a PNG or JPEG") from None


def frame_size(path: str | os.PathLike, video: bool = False) -> tuple[int, int]:
    """``(height, width)`` of an image (upright, as ``read_image`` returns it) or of a video's frames,
    from the header alone: what cost checks need before anything is decoded."""
    if not video:
        from PIL import Image, UnidentifiedImageError

        path = _require_file(path, "image")
        try:
            with Image.open(path) as img:
                width, height = img.size
                turned = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientation: a quarter turn
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
            raise MultiTalkInputError(f"not a readable image: {path} ({err}); give a PNG or JPEG") from None
        return (width, height) if turned else (height, width)
    import av

    path = _require_file(path, "video")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MultiTalkInputError(f"no video track in {path}; give an mp4/webm/mov video or an image")
            context = container.streams.video[0].codec_context
            return context.height, context.width
    except (av.error.FFmpegError, ValueError) as err:
        raise MultiTalkInputError(f"cannot decode video {path} ({err}); give an mp4/webm/mov file") from None


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    from PIL import Image

    path = Path(path)
    with atomic_output(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(
            tmp, format=(path.suffix[1:] or "png").upper().replace("JPG", "JPEG")
        )


def frame_strip(video: np.ndarray, count: int = 8, gap: int = 4) -> np.ndarray:
    """``count`` evenly spaced frames of a uint8 ``(F, H, W, 3)`` video side by side, white gaps between."""
    picks = np.linspace(0, video.shape[0] - 1, count).round().astype(int)
    spacer = np.full((video.shape[1], gap, 3), 255, np.uint8)
    return np.concatenate([part for i in picks for part in (video[i], spacer)][:-1], axis=1)


# ----------------------------------------------------------------------------- audio


def read_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 at ``sample_rate`` from any audio file, or a video file's audio track."""
    import av

    path = _require_file(path, "audio")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MultiTalkInputError(f"no audio in {path}; give a wav/flac/mp3/ogg file or a video with sound")
            declared = container.streams.audio[0].sample_rate or 0
            if not MIN_SAMPLE_RATE <= declared <= MAX_SAMPLE_RATE:
                raise MultiTalkInputError(
                    f"audio {path} declares {declared} Hz, outside {MIN_SAMPLE_RATE}-"
                    f"{MAX_SAMPLE_RATE} Hz; re-export it at 16 kHz (or any normal rate)"
                )
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks = []
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except MultiTalkInputError:
        raise
    except (av.error.FFmpegError, ValueError) as err:
        raise MultiTalkInputError(f"cannot decode audio {path} ({err}); give a wav/flac/mp3/ogg file") from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise MultiTalkInputError(f"audio {path} has no samples; give a non-empty recording")
    if not np.isfinite(samples).all():
        raise MultiTalkInputError(f"audio {path} contains NaN or infinite samples; re-export it")
    return samples


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    import soundfile

    with atomic_output(path) as tmp:
        soundfile.write(tmp, np.asarray(samples, dtype=np.float32), sample_rate, format="WAV", subtype="PCM_16")


# ----------------------------------------------------------------------------- video


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: int = 25,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    crf: int = 18,
) -> None:
    """H.264 mp4 of uint8 ``(T, H, W, 3)`` frames, with ``audio`` (mono float) muxed as AAC.

    The audio is cut or padded to the video's duration, as the reference implementation does.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    num, height, width, _ = frames.shape
    even_h, even_w = height - height % 2, width - width % 2  # yuv420p needs even sizes
    with atomic_output(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            video = container.add_stream("libx264", rate=fps)
            video.width, video.height, video.pix_fmt = even_w, even_h, "yuv420p"
            # one encoder thread: x264's threaded lookahead makes the bytes depend on the machine's load; one thread
            # gives the same file for the same frames (a 480p 81-frame clip still encodes in about a second)
            video.options = {"crf": str(crf), "preset": "medium", "threads": "1"}
            video.codec_context.thread_count = 1
            sound = None
            if audio is not None:
                sound = container.add_stream("aac", rate=sample_rate, layout="mono")
            for index, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:even_h, :even_w]), format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, fps)  # explicit timestamps: a stable frame order
                for packet in video.encode(frame):
                    container.mux(packet)
            for packet in video.encode():
                container.mux(packet)
            if sound is not None:
                length = round(num / fps * sample_rate)
                track = np.zeros(length, np.float32)
                clip = np.asarray(audio, np.float32)[:length]
                track[: clip.size] = clip
                block = 1024
                for start in range(0, length, block):
                    piece = av.AudioFrame.from_ndarray(track[None, start : start + block], format="flt", layout="mono")
                    piece.sample_rate = sample_rate
                    piece.pts = start
                    piece.time_base = Fraction(1, sample_rate)
                    for packet in sound.encode(piece):
                        container.mux(packet)
                for packet in sound.encode():
                    container.mux(packet)


def frames_from_uint8(frames: np.ndarray):
    """uint8 ``(F, H, W, 3)`` -> float tensor ``[3, F, H, W]`` in [-1, 1], as they are (no resize)."""
    import torch

    return torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1


def frames_to_uint8(video) -> np.ndarray:
    """The way back: float tensor ``[3, F, H, W]`` in [-1, 1] -> uint8 ``(F, H, W, 3)``, rounded."""
    return ((video.detach().float().cpu().permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """All frames as uint8 ``(T, H, W, 3)`` and the frame rate."""
    import av

    path = _require_file(path, "video")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MultiTalkInputError(f"no video track in {path}; give an mp4/webm/mov video")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except MultiTalkInputError:
        raise
    except (av.error.FFmpegError, ValueError) as err:
        raise MultiTalkInputError(f"cannot decode video {path} ({err}); give an mp4 file") from None
    if not frames:
        raise MultiTalkInputError(f"video {path} has no frames")
    return np.stack(frames), fps


class FrameSequence:
    """A video's frames at a fixed rate, holding only the frames asked for: a long video's frames do
    not all fit in memory, and dubbing needs only one frame per clip. Indexable like an array
    (``len``, ``seq[i]``, negative indices); ``indices`` lists the frames held."""

    def __init__(self, frames: dict[int, np.ndarray], length: int, fps: float, source_fps: float):
        self.frames, self.length, self.fps, self.source_fps = frames, length, fps, source_fps

    def __len__(self) -> int:
        return self.length

    @property
    def indices(self) -> list[int]:
        return sorted(self.frames)

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index) + (self.length if int(index) < 0 else 0)
        if index not in self.frames:
            raise IndexError(f"frame {index} was not kept (kept: {self.indices[:8]}...)")
        return self.frames[index]


class FrameWindow:
    """Frames ``start .. stop-1`` of a video (an array or a ``FrameSequence``) as a video of their own: one
    shot of a video cut into shots, without copying its frames."""

    def __init__(self, video, start: int, stop: int):
        self.video, self.start, self.stop = video, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def indices(self) -> list[int]:
        held = getattr(self.video, "indices", range(len(self.video)))
        return [j - self.start for j in held if self.start <= j < self.stop]

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index) + (len(self) if int(index) < 0 else 0)
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} is outside this shot of {len(self)} frames")
        return self.video[self.start + index]


def detect_shots(path: str | os.PathLike, fps: float = 25.0, threshold: float = 27.0) -> list[int]:
    """Where a video cuts to another shot: the first frame of each shot after the first, as frame
    indices at ``fps`` (the rate ``read_video_frames`` resamples to). PySceneDetect's content detector
    (changes of hue, saturation and brightness between frames; ``threshold`` its default 27) on
    PyAV's decoding; a cut is placed at the output frame on screen at the cut's time."""
    try:
        from scenedetect import ContentDetector, detect
    except ImportError as err:  # not installed, or OpenCV without its system libraries
        raise MultiTalkInputError(
            f"--scenes needs PySceneDetect and OpenCV ({err}); pip install 'multitalk[scenes]'"
        ) from None
    path = _require_file(path, "video")
    try:
        scenes = detect(str(path), ContentDetector(threshold=threshold), backend="pyav")
    except Exception as err:  # the detector's own errors for a file it cannot read
        raise MultiTalkInputError(f"cannot find the shots of {path} ({err}); give an mp4/webm/mov file") from None
    starts = {round(start.seconds * fps) for start, _ in scenes[1:]}
    return sorted(starts - {0})


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def read_video_frames(path: str | os.PathLike, fps: float = 25.0, keep=None) -> FrameSequence:
    """The video resampled to ``fps`` by its timestamps: output frame j shows the source frame on
    screen at time j/fps (frames repeated or dropped as the rates need). ``keep(j)`` says which
    output frames to hold (default: all). Any codec PyAV decodes (H.264, VP9, AV1, ...)."""
    import av

    path = _require_file(path, "video")
    held: dict[int, np.ndarray] = {}
    count, source_fps = 0, fps
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MultiTalkInputError(f"no video track in {path}; give an mp4/webm/mov video or an image")
            stream = container.streams.video[0]
            source_fps = float(stream.average_rate or stream.guessed_rate or fps)
            start, previous, last_time = None, None, 0.0
            for index, frame in enumerate(container.decode(video=0)):
                t = frame.time if frame.time is not None else index / source_fps
                start = t if start is None else start
                t -= start
                if previous is not None:  # the previous frame is on screen until t
                    while count / fps < t - 1e-9:
                        if keep is None or keep(count):
                            held[count] = previous.to_ndarray(format="rgb24")
                        count += 1
                previous, last_time = frame, t
            if previous is not None:
                # the last frame stays one source frame long; containers that count time in milliseconds
                # (Matroska, WebM) round it, so half a millisecond of slack keeps a phantom frame out
                end = last_time + 1.0 / source_fps
                while count / fps < end - 5e-4:
                    if keep is None or keep(count):
                        held[count] = previous.to_ndarray(format="rgb24")
                    count += 1
    except MultiTalkInputError:
        raise
    except (av.error.FFmpegError, ValueError) as err:
        raise MultiTalkInputError(f"cannot decode video {path} ({err}); give an mp4/webm/mov file") from None
    if count == 0:
        raise MultiTalkInputError(f"video {path} has no frames; give a video with at least one frame")
    return FrameSequence(held, count, fps, source_fps)


def probe(path: str | os.PathLike) -> dict:
    """Durations and codecs of a media file (what tests and the CLI summary need)."""
    import av

    with av.open(str(path)) as container:
        info: dict = {"duration": container.duration / 1e6 if container.duration else None}
        for stream in container.streams:
            seconds = float(stream.duration * stream.time_base) if stream.duration else None
            info[stream.type] = {"codec": stream.codec_context.name, "seconds": seconds}
            if stream.type == "video":
                info[stream.type]["frames"] = stream.frames
    return info
