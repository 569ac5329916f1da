"""Hypothesis drives the breaker and a small reference model through the same random
story (calls that succeed, fail or are ignored, calls left in flight, time passing,
manual control) and checks after every step that they agree."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from stalwart import CircuitBreaker, CircuitOpenError, State
from stalwart.testing import FakeClock


class Boom(Exception):
    pass


class Skip(Exception):
    """Configured as ignored."""


@dataclass
class Model:
    """The breaker as its documentation describes it, written plainly."""

    threshold: int
    recovery: float
    success_threshold: int
    max_probes: int
    backoff: float
    cap: float
    lease: float
    state: State = State.CLOSED
    period: int = 0  # bumped by every transition; a closed call belongs to one period
    consecutive: int = 0
    open_until: float = 0.0
    open_for: float = 0.0
    failed_recoveries: int = 0
    probe_successes: int = 0
    probes: dict[int, float] = field(default_factory=dict)  # probe id -> lease end
    next_probe: int = 0
    successes: int = 0
    failures: int = 0
    ignored: int = 0
    rejections: int = 0

    def __post_init__(self) -> None:
        self.open_for = self.recovery

    def move(self, state: State) -> None:
        self.state = state
        self.period += 1
        self.consecutive = 0
        self.probe_successes = 0
        self.probes.clear()

    def open(self, now: float) -> None:
        self.open_until = now + self.open_for
        self.move(State.OPEN)

    def failed_recovery(self, now: float) -> None:
        self.failed_recoveries += 1
        self.open_for = min(self.open_for * self.backoff, self.cap)
        self.open(now)

    def close(self) -> None:
        self.failed_recoveries = 0
        self.open_for = self.recovery
        self.move(State.CLOSED)

    def tick(self, now: float) -> None:
        if self.state is State.OPEN and now >= self.open_until:
            self.move(State.HALF_OPEN)
        elif self.state is State.HALF_OPEN and any(end <= now for end in self.probes.values()):
            self.failed_recovery(now)

    def admit(self, now: float) -> tuple[str, int] | None:
        """A tag for an admitted call, or None when rejected."""
        self.tick(now)
        if self.state is State.CLOSED:
            return ("closed", self.period)
        if self.state is State.DISABLED:
            return ("untracked", 0)
        if self.state is State.HALF_OPEN and len(self.probes) < self.max_probes:
            self.next_probe += 1
            self.probes[self.next_probe] = now + self.lease
            return ("probe", self.next_probe)
        self.rejections += 1
        return None

    def succeeded(self, tag: tuple[str, int], now: float) -> None:
        self.successes += 1
        self.tick(now)  # a probe back after its lease has already failed
        kind, key = tag
        if kind == "closed" and self.state is State.CLOSED and key == self.period:
            self.consecutive = 0
        elif kind == "probe" and key in self.probes:
            del self.probes[key]
            self.probe_successes += 1
            if self.probe_successes >= self.success_threshold:
                self.close()

    def failed(self, tag: tuple[str, int], now: float) -> None:
        self.failures += 1
        self.tick(now)
        kind, key = tag
        if kind == "closed" and self.state is State.CLOSED and key == self.period:
            self.consecutive += 1
            if self.consecutive >= self.threshold:
                self.open(now)
        elif kind == "probe" and key in self.probes:
            del self.probes[key]
            self.failed_recovery(now)

    def was_ignored(self, tag: tuple[str, int], now: float) -> None:
        self.ignored += 1
        self.tick(now)
        if tag[0] == "probe":
            self.probes.pop(tag[1], None)


OUTCOMES = st.sampled_from(["success", "failure", "ignored"])


class BreakerMachine(RuleBasedStateMachine):
    clock: FakeClock
    breaker: CircuitBreaker
    model: Model
    open_blocks: list[tuple[str, int] | None]

    @initialize(
        threshold=st.integers(1, 4),
        recovery=st.sampled_from([1.0, 5.0, 30.0]),
        success_threshold=st.integers(1, 3),
        max_probes=st.integers(1, 3),
        backoff=st.sampled_from([1.0, 2.0]),
        lease=st.sampled_from([0.5, 3.0, 100.0]),
    )
    def setup(
        self,
        threshold: int,
        recovery: float,
        success_threshold: int,
        max_probes: int,
        backoff: float,
        lease: float,
    ) -> None:
        self.clock = FakeClock()
        cap = recovery * 3
        self.breaker = CircuitBreaker(
            "model",
            failure_threshold=threshold,
            recovery_timeout=recovery,
            success_threshold=success_threshold,
            half_open_max_calls=max_probes,
            recovery_backoff=backoff,
            max_recovery_timeout=cap,
            probe_lease=lease,
            ignore=Skip,
            clock=self.clock,
        )
        self.model = Model(
            threshold=threshold,
            recovery=recovery,
            success_threshold=success_threshold,
            max_probes=max_probes,
            backoff=backoff,
            cap=cap,
            lease=lease,
        )
        self.open_blocks = []

    def _settle_in_model(self, tag: tuple[str, int], outcome: str) -> None:
        now = self.clock.monotonic()
        if outcome == "success":
            self.model.succeeded(tag, now)
        elif outcome == "failure":
            self.model.failed(tag, now)
        else:
            self.model.was_ignored(tag, now)

    @rule(outcome=OUTCOMES)
    def call(self, outcome: str) -> None:
        tag = self.model.admit(self.clock.monotonic())

        def body() -> None:
            if outcome == "failure":
                raise Boom
            if outcome == "ignored":
                raise Skip

        try:
            self.breaker.call(body)
        except CircuitOpenError:
            assert tag is None, "breaker rejected a call the model admits"
            return
        except (Boom, Skip):
            pass
        assert tag is not None, "breaker admitted a call the model rejects"
        self._settle_in_model(tag, outcome)

    @rule()
    def begin_call(self) -> None:
        """A call starts and stays in flight (a `with` block left open)."""
        tag = self.model.admit(self.clock.monotonic())
        try:
            self.breaker.__enter__()
        except CircuitOpenError:
            assert tag is None, "breaker rejected a call the model admits"
            return
        assert tag is not None, "breaker admitted a call the model rejects"
        self.open_blocks.append(tag)

    @precondition(lambda self: bool(self.open_blocks))
    @rule(outcome=OUTCOMES)
    def end_call(self, outcome: str) -> None:
        """The most recent call in flight ends (blocks of one breaker nest, so LIFO)."""
        tag = self.open_blocks.pop()
        assert tag is not None
        exc: BaseException | None = None
        if outcome == "failure":
            exc = Boom()
        elif outcome == "ignored":
            exc = Skip()
        self.breaker.__exit__(type(exc) if exc else None, exc, None)
        self._settle_in_model(tag, outcome)

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.0, 3.0, 10.0, 60.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(action=st.sampled_from(["force_open", "disable", "reset"]))
    def manual(self, action: str) -> None:
        """An operator steps in. One rule for all three, so these story-erasing steps stay
        rare and hypothesis spends its budget on long stories."""
        getattr(self.breaker, action)()
        if action == "reset":
            self.model.close()
        else:
            self.model.move(State.FORCED_OPEN if action == "force_open" else State.DISABLED)

    @invariant()
    def agrees_with_the_model(self) -> None:
        self.model.tick(self.clock.monotonic())
        snap = self.breaker.snapshot()
        model = self.model
        assert snap.state is model.state
        assert snap.half_open_in_flight == len(model.probes) <= model.max_probes
        assert snap.success_count == model.probe_successes
        assert snap.failed_recoveries == model.failed_recoveries
        assert snap.recovery_timeout == model.open_for
        if model.state is State.CLOSED:
            assert snap.failure_count == model.consecutive < model.threshold
        if model.state is State.OPEN:
            assert snap.retry_in == model.open_until - self.clock.monotonic()
        assert (snap.total_successes, snap.total_failures, snap.total_ignored) == (
            model.successes,
            model.failures,
            model.ignored,
        )
        assert snap.total_rejections == model.rejections


BreakerMachine.TestCase.settings = settings(max_examples=500, stateful_step_count=60, deadline=None)
TestBreakerAgainstModel = BreakerMachine.TestCase
