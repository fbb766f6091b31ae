"""Speech-like conversations of the synthetic world."""

import numpy as np
import pytest

from multitalk.synthetic import conversation, loudness_envelope


def test_deterministic_per_seed():
    a, b = conversation(2, 3.0, "para", seed=7), conversation(2, 3.0, "para", seed=7)
    c = conversation(2, 3.0, "para", seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a.tracks, b.tracks))
    assert not np.array_equal(a.tracks[0], c.tracks[0])


@pytest.mark.parametrize("people", [2, 3])
def test_add_tracks_are_never_loud_together(people):
    conv = conversation(people, 8.0, "add", seed=1)
    env = np.stack(conv.envelopes)  # people, frames
    loud = env > 0.02
    assert loud.sum(0).max() == 1  # one speaker at a time
    assert all(row.any() for row in loud)  # and everyone gets a turn


def test_para_tracks_overlap_and_have_pauses():
    conv = conversation(2, 10.0, "para", seed=3)
    loud = np.stack(conv.envelopes) > 0.02
    assert (loud.sum(0) == 2).any()
    assert (~loud).any(axis=1).all()


def test_silent_mode_and_envelope_length():
    conv = conversation(3, 2.5, "silent", seed=0)
    assert all((t == 0).all() for t in conv.tracks)
    assert loudness_envelope(conv.tracks[0]).shape == (62,)
    assert conv.tracks[0].dtype == np.float32 and conv.tracks[0].size == 40000


def test_syllable_rate_envelope():
    conv = conversation(1, 6.0, "para", seed=2)
    env = conv.envelopes[0]
    talking = env > 0.02
    onsets = np.flatnonzero(talking[1:] & ~talking[:-1])
    assert 8 <= onsets.size <= 40  # syllables separated by dips, not one long tone


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="unknown conversation mode"):
        conversation(2, 1.0, "duet")
