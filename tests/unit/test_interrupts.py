"""Ctrl-C held back outside the sections that may be cut (real SIGINTs to this process)."""

from __future__ import annotations

import signal

import pytest

from segmentation.study import interrupts


def ctrl_c() -> None:
    signal.raise_signal(signal.SIGINT)


def test_outside_a_deferred_block_ctrl_c_is_immediate():
    with pytest.raises(KeyboardInterrupt):
        ctrl_c()


def test_ctrl_c_waits_for_the_next_section_that_may_be_cut():
    steps = []
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        ctrl_c()  # during a store write, say
        steps.append("write finished")
        with interrupts.allowed():
            steps.append("never reached")
    assert steps == ["write finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_inside_an_allowed_section_is_immediate():
    steps = []
    with pytest.raises(KeyboardInterrupt), interrupts.deferred(), interrupts.allowed():
        ctrl_c()
        steps.append("never reached")
    assert steps == []


def test_a_held_back_ctrl_c_is_raised_at_a_checkpoint_or_at_the_end():
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        ctrl_c()
        interrupts.checkpoint()
        pytest.fail("the checkpoint let it pass")
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        ctrl_c()
    with interrupts.deferred():
        interrupts.checkpoint()  # nothing pending: nothing raised


def test_the_clean_up_after_a_ctrl_c_is_not_cut_by_a_second_one():
    cleaned = []
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        try:
            with interrupts.allowed():
                ctrl_c()
        finally:
            ctrl_c()  # the terminal's and the parent's: both arrive
            with interrupts.allowed():
                cleaned.append("runs closed")
    assert cleaned == ["runs closed"]
    with pytest.raises(KeyboardInterrupt):  # and the usual Ctrl-C is back
        ctrl_c()


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts.deferred(), interrupts.allowed():
            ctrl_c()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_worker_ignores_the_second_ctrl_c_even_after_the_trials():
    previous = signal.getsignal(signal.SIGINT)
    interrupts.raise_once()  # a sweep worker's policy
    try:
        with pytest.raises(KeyboardInterrupt), interrupts.deferred(), interrupts.allowed():
            ctrl_c()  # stops the trials
        ctrl_c()  # the parent's copy of the same Ctrl-C arrives during the clean-up
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    interrupts.raise_once()
    try:
        with pytest.raises(KeyboardInterrupt):  # no deferred block: the first one raises
            ctrl_c()
        ctrl_c()
    finally:
        signal.signal(signal.SIGINT, previous)
