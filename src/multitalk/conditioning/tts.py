"""Voices from text, offline: the official ``tts_audio`` input spoken by espeak-ng.

The official form is ``{"text": "(s1) Hello. (s2) Hi, how are you? (s1) Fine.", "human1_voice": ...,
"human2_voice": ...}``: turns marked by speaker, spoken one after the other. As in the official
code, every person gets a track on one shared timeline (their turns spoken, silence while the
others speak), so the tracks play together (``para``). The official code speaks with Kokoro voice
files; here a voice is an espeak-ng voice name (``en+m3``, ``en-us+f2``, ...), with a distinct
default per person. espeak-ng comes from the system (Debian: ``apt install espeak-ng``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..constants import SAMPLE_RATE
from ..errors import MultiTalkInputError

TURN = re.compile(r"\(s(\d+)\)\s*(.*?)(?=\s*\(s\d+\)|$)", re.DOTALL)
DEFAULT_VOICES = ("en+m3", "en+f3", "en+m7", "en+f4", "en+m1", "en+f2", "en+m5", "en+f1")
PAUSE_SECONDS = 0.25  # between turns


def turns(text: str) -> list[tuple[int, str]]:
    """``(person index, words)`` per turn; text without ``(sN)`` marks is person 1's."""
    found = [(int(who) - 1, words.strip()) for who, words in TURN.findall(text) if words.strip()]
    if not found and text.strip():
        found = [(0, text.strip())]
    if any(who < 0 for who, _ in found):
        raise MultiTalkInputError("tts_audio text: speakers are (s1), (s2), ... counting from 1")
    return found


def speak(words: str, voice: str) -> np.ndarray:
    """One turn as float32 at 16 kHz."""
    from ..media import read_audio

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "turn.wav"
        done = subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), words], capture_output=True, text=True)
        if done.returncode or not out.is_file():
            raise MultiTalkInputError(f"espeak-ng could not speak with voice {voice!r}: {done.stderr.strip()[:120]}")
        return read_audio(out)  # espeak-ng writes 22.05 kHz; read_audio resamples to 16 kHz mono


def tts_tracks(spec: dict) -> list[np.ndarray]:
    """The ``tts_audio`` object -> one 16 kHz track per person, all the same length."""
    if shutil.which("espeak-ng") is None:
        raise MultiTalkInputError("tts_audio needs espeak-ng (Debian: apt install espeak-ng); or give recorded voices")
    if not isinstance(spec, dict) or not isinstance(spec.get("text"), str):
        raise MultiTalkInputError('tts_audio must be {"text": "(s1) ... (s2) ...", "human1_voice": ..., ...}')
    said = turns(spec["text"])
    if not said:
        raise MultiTalkInputError("tts_audio text is empty")
    named = [k for k in spec if re.fullmatch(r"human\d+_voice", k)]
    people = max([who + 1 for who, _ in said] + [int(k[5:-6]) for k in named])
    voices = []
    for person in range(people):
        voice = spec.get(f"human{person + 1}_voice") or DEFAULT_VOICES[person % len(DEFAULT_VOICES)]
        if not isinstance(voice, str) or "/" in voice or voice.endswith((".pt", ".wav")):
            raise MultiTalkInputError(
                f"human{person + 1}_voice {voice!r}: give an espeak-ng voice name such as en+m3 or en-us+f2 "
                "(the official Kokoro voice files need the official TTS)"
            )
        voices.append(voice)
    pause = np.zeros(int(PAUSE_SECONDS * SAMPLE_RATE), np.float32)
    pieces: list[list[np.ndarray]] = [[] for _ in range(people)]
    for who, words in said:
        audio = np.concatenate([speak(words, voices[who]), pause])
        for person in range(people):
            pieces[person].append(audio if person == who else np.zeros_like(audio))
    return [np.concatenate(p) for p in pieces]
