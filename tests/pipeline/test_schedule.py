"""The poll schedule and the latency model that aims first polls (simulated time, no sleeping)."""

from __future__ import annotations

import heapq
import random
import statistics
from collections import Counter

import pytest

from tagger.pipeline.dispatch import _POLL_BUDGET
from tagger.pipeline.latency import LatencyModel, turnbull
from tagger.pipeline.schedule import Entry, Schedule


def test_schedule_pops_in_due_order_only_when_due():
    s = Schedule()
    for due, job in [(5.0, 1), (1.0, 2), (3.0, 3)]:
        s.add(Entry(due, job, f"t{job}", 0.0))
    assert s.next_due() == 1.0
    assert [e.job_id for e in s.pop_due(3.0)] == [2, 3]
    assert len(s) == 1 and s.next_due() == 5.0
    assert s.pop_due(4.9) == []
    assert Schedule().next_due() is None


def test_without_history_first_polls_spread_up_to_the_documented_wait():
    m = LatencyModel(first_poll_delay=4.0, interval=1.0, max_interval=10.0)
    assert [m.first_delay() for _ in range(8)] == [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]
    assert m.next_delay(5.0, 1.0) == 1.0
    assert m.quantile(0.5) is None


def test_turnbull_puts_censored_mass_where_the_exact_data_says():
    # Bins of 1: 10 exact in bin 2, 10 exact in bin 5, 20 known only as "at most 6".
    p = turnbull(Counter({(2, 3): 10, (5, 6): 10, (0, 6): 20}), 8)
    assert sum(p) == pytest.approx(1.0)
    assert p[2] == pytest.approx(0.5, abs=1e-3) and p[5] == pytest.approx(0.5, abs=1e-3)
    assert p[0] == p[1] == p[3] == p[4] == p[6] == p[7] == 0.0


def test_turnbull_without_earlier_evidence_places_censored_mass_late():
    # Only "done by 6", and one probe "still working at 4, done by 7": mass goes to [4, 6).
    p = turnbull(Counter({(0, 6): 30, (4, 7): 1}), 8)
    assert sum(p[:4]) == 0.0
    assert sum(p[4:6]) == pytest.approx(1.0)


def simulate(latency, n=600, in_flight=32, interval=1.0, seed=1, **kw):
    """Drive the model as the dispatcher does, on simulated time; returns (polls/job, median delay, wall, model)."""
    model = LatencyModel(4.0 * interval, interval, 10.0 * interval, seed=seed, **kw)
    rnd = random.Random(seed)
    events: list = []
    submitted = polls = 0
    delays = []
    t = 0.0

    def submit(now: float) -> None:
        nonlocal submitted
        submitted += 1
        heapq.heappush(events, (now + model.first_delay(), submitted, now, latency(rnd), None, interval))

    for _ in range(in_flight):
        submit(0.0)
    while events:
        t, job, at, needs, last, gap = heapq.heappop(events)
        polls += 1
        if t - at >= needs:
            model.observe(0.0 if last is None else last - at, t - at)
            delays.append(t - at - needs)
            if submitted < n:
                submit(t)
        else:
            gap = model.next_delay(t - at, gap)
            heapq.heappush(events, (t + gap, job, at, needs, t, gap))
    return polls / n, statistics.median(delays), t, model


@pytest.mark.slow
def test_uniform_6_to_12_meets_the_poll_and_delay_targets():
    polls, delay, wall, model = simulate(lambda r: r.uniform(6.0, 12.0), n=1000)
    assert polls <= 2.0
    assert delay <= 1.0
    assert wall <= 1.25 * 1000 * 9.0 / 32
    assert 8.5 <= model.quantile(0.5) <= 9.5  # the true median is 9


def test_a_fixed_latency_is_polled_once_right_when_done():
    polls, delay, wall, model = simulate(lambda r: 0.98)
    assert polls <= 1.15
    assert delay <= 0.05
    assert model.first_delay() in (pytest.approx(1.0), pytest.approx(1.0, abs=1.0))
    aims = [model.first_delay() for _ in range(200)]
    assert statistics.median(aims) == pytest.approx(1.0, abs=0.03)


@pytest.mark.slow
def test_scaled_timings_scale_the_aim():
    polls, delay, _, model = simulate(lambda r: r.uniform(0.6, 1.2), n=1000, interval=0.1)
    assert polls <= 2.0 and delay <= 0.1
    assert 0.85 <= statistics.median(model.first_delay() for _ in range(100)) <= 1.1


@pytest.mark.slow
def test_a_long_tail_is_polled_sparsely():
    # One job in ten takes 40 s: polling those every second would cost ~28 polls each.
    polls, _, _, model = simulate(lambda r: 40.0 if r.random() < 0.1 else r.uniform(6.0, 12.0))
    assert polls <= 2.5
    assert model.next_delay(15.0, 1.0) >= 5.0  # nothing finishes between 12 s and 40 s
    assert model.next_delay(9.0, 1.0) == 1.0


def test_older_than_anything_seen_backs_off_to_the_maximum():
    m = LatencyModel(first_poll_delay=4.0, interval=1.0, max_interval=10.0, min_observations=4)
    for t in (5.0, 6.0, 7.0, 8.0):
        m.observe(t - 1.0, t)
    assert m.next_delay(20.0, 1.0) == 1.5
    assert m.next_delay(30.0, 8.0) == 10.0


def test_budget_trades_polls_for_detection_time():
    m = LatencyModel(first_poll_delay=4.0, interval=1.0, max_interval=10.0)
    rnd = random.Random(3)
    for _ in range(400):
        t = rnd.uniform(6.0, 12.0)
        m.observe(t - 1.0 + rnd.random() * 0.0, t)
    early_polls, early_detect = m.expected(7.0)
    late_polls, late_detect = m.expected(11.0)
    assert early_polls > late_polls and early_detect < late_detect
    aim = statistics.median(m.first_delay() for _ in range(100))
    polls, _ = m.expected(aim)
    assert polls <= m.poll_budget + 1e-9


def test_jobs_still_working_keep_the_first_completions_from_looking_typical():
    from tagger.pipeline.latency import LatencyModel

    def model(with_working: bool) -> LatencyModel:
        m = LatencyModel(4.0, 1.0, 10.0, seed=1)
        for i in range(8):  # the first jobs back are the fast ones
            m.observe(5.5 + i * 0.05, 6.5 + i * 0.05, key=i)
        if with_working:
            for j in range(24):  # the rest of the first batch, still working when last polled
                m.working(100 + j, 7.0 + (j % 3))
        return m

    naive, censored = model(False), model(True)
    assert naive.quantile(0.5) < 7.0
    assert censored.quantile(0.5) >= 8.0
    assert censored.first_delay() > naive.first_delay()
    censored.forget(100)
    censored.observe(8.0, 9.0, key=101)  # settled: no longer counted as working
    assert censored._working.keys().isdisjoint({100, 101})


# -- a first run: the documented latency as a prior, in-flight polls re-aimed -------------------------


def test_schedule_reschedule_reorders_the_waiting_tokens():
    s = Schedule()
    for due, job in [(1.0, 1), (2.0, 2), (3.0, 3)]:
        s.add(Entry(due, job, f"t{job}", 0.0))
    s.reschedule(lambda e: 10.0 - e.due)  # the latest becomes the earliest
    assert s.next_due() == 7.0
    assert [e.job_id for e in s.pop_due(8.0)] == [3, 2]
    assert [e.job_id for e in s.pop_due(9.0)] == [1]


def test_the_documented_range_aims_the_first_polls_before_any_history():
    m = LatencyModel(4.0, 1.0, 10.0, prior=(6.0, 12.0), seed=1)
    assert m.prior_active
    assert 8.5 <= m.quantile(0.5) <= 9.5  # the prior's median, 9 s
    aim = m.aim()
    assert 8.0 <= aim <= 11.0  # aimed into the range, not at the 4 s first-poll default
    polls, _ = m.expected(aim)
    assert polls <= m.poll_budget + 1e-9
    leads = [m.first_lead() for _ in range(40)]
    # The ladder first: 0.55 of the aim, 0.3, ... down to one interval, each once; then (mostly) the aim.
    ladder = [1.0 - 0.55**k for k in range(1, 5) if aim * 0.55**k >= 1.0]
    assert leads[: len(ladder)] == pytest.approx(ladder)
    assert m.first_delay(leads[len(ladder) - 1]) >= 1.0 - 1e-9
    assert sum(1 for x in leads[len(ladder) :] if x == 0.0) >= 30
    assert m.next_delay(2.0, 1.0, probed=True) == pytest.approx(aim - 2.0)  # a probe found working waits for the aim


def test_an_answer_before_the_range_drops_the_prior_and_bumps_the_version():
    m = LatencyModel(4.0, 0.05, 0.5, prior=(6.0, 12.0), seed=1)
    before = m.version
    m.observe(0.0, 5.8)  # inside the 5 % margin: the client's clock starts a little late
    assert m.prior_active
    m.observe(0.05, 0.1)
    assert not m.prior_active
    assert m.version > before
    assert m.aim() <= 0.1 + 1e-9  # everything seen is done by 0.1 s


def test_a_job_working_past_the_range_drops_the_prior():
    m = LatencyModel(4.0, 1.0, 10.0, prior=(6.0, 12.0), seed=1)
    m.working("a", 12.0)
    assert m.prior_active
    m.working("a", 13.0)
    assert not m.prior_active
    assert m.aim() >= 13.0  # no answer yet: nothing is done before the oldest job seen working


def simulate_first_run(latency, n, *, interval=1.0, seed=1, budget=_POLL_BUDGET, **kw):
    """A first run as the dispatcher drives it: prior from the first-poll delay, waiting polls re-aimed on refits.

    Simulated time on the FakeClock; returns (polls/job, median delay, wall, re-aims, model).
    """
    from helpers import FakeClock

    clock = FakeClock()
    model = LatencyModel(
        4.0 * interval,
        interval,
        10.0 * interval,
        prior=(6.0 * interval, 12.0 * interval),
        poll_budget=budget,
        seed=seed,
        **kw,
    )
    rnd = random.Random(seed)
    schedule = Schedule()
    needs: dict[int, float] = {}
    polls = reaims = 0
    delays = []
    version = model.version

    def submit() -> None:
        job = len(needs) + 1
        needs[job] = latency(rnd)
        lead = model.first_lead()
        schedule.add(Entry(clock() + model.first_delay(lead), job, f"t{job}", clock(), lead=lead))

    def due(e: Entry) -> float:
        if e.last_poll is None:
            return e.submitted_at + model.first_delay(e.lead)
        e.last_gap = model.next_delay(e.last_poll - e.submitted_at, e.previous_gap, probed=e.polls == 1 and e.lead > 0)
        return e.last_poll + e.last_gap

    for _ in range(min(32, n)):
        submit()
    while len(schedule):
        clock.sleep(max(0.0, schedule.next_due() - clock()))
        for e in schedule.pop_due(clock()):
            polls += 1
            age = clock() - e.submitted_at
            if age >= needs[e.job_id]:
                model.observe((e.last_poll or e.submitted_at) - e.submitted_at, age, e.job_id)
                delays.append(age - needs[e.job_id])
                if len(needs) < n:
                    submit()
                continue
            model.working(e.job_id, age)
            e.polls += 1
            gap = model.next_delay(age, e.last_gap, probed=e.polls == 1 and e.lead > 0)
            e.previous_gap, e.last_gap, e.last_poll, e.due = e.last_gap, gap, clock(), clock() + gap
            schedule.add(e)
        if model.version != version:
            version = model.version
            reaims += 1
            schedule.reschedule(due)
    return polls / n, statistics.median(delays), clock(), reaims, model


@pytest.mark.slow
@pytest.mark.parametrize("n", [64, 1000])
def test_a_first_run_at_the_documented_latency_meets_the_targets(n):
    polls, delay, wall, reaims, model = simulate_first_run(lambda r: r.uniform(6.0, 12.0), n)
    assert polls <= 2.0
    assert delay <= 1.0
    assert model.prior_active  # every answer fits the documented range
    assert reaims > 0
    assert wall <= 1.3 * (n / 32 * 9.0 + 12.0)  # within 30 % of the ideal plus one job's latency


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_first_run_keeps_its_polls_per_job_to_the_budget(seed):
    # Left to its estimate alone, the aim spends 1.71-1.86 polls per job over these seeds (budget 1.8):
    # the run's own count of its polls pays back what it overspent and spends what it saved.
    polls, delay, _, _, model = simulate_first_run(lambda r: r.uniform(6.0, 12.0), 1000, seed=seed, budget=1.8)
    assert polls == pytest.approx(1.8, abs=0.025)
    assert delay <= 0.95
    assert abs(model.budget - 1.8) < 0.2


def test_polls_over_budget_are_paid_back_and_polls_saved_are_spent():
    def model_after(polls_each: int, *, this_run: bool = True) -> LatencyModel:
        """40 jobs done by 9 s after ``polls_each`` polls; seen by this run (keyed) or read from history."""
        m = LatencyModel(4.0, 1.0, 10.0, prior=(6.0, 12.0), poll_budget=1.8, budget_horizon=32, seed=1)
        for job in range(40):
            key = job if this_run else None
            for k in range(polls_each - 1):
                if this_run:
                    m.working(key, 6.0 + k * 0.01)
            m.observe(6.0 + (polls_each - 2) * 0.01 if polls_each > 1 else 0.0, 9.0, key)
        return m

    assert LatencyModel(4.0, 1.0, 10.0, prior=(6.0, 12.0), poll_budget=1.8, seed=1).budget == pytest.approx(1.8)
    over, under = model_after(3), model_after(1)
    assert over.budget == pytest.approx(1.3)  # 40 jobs x 1.2 polls over: the correction's floor, half a poll
    assert under.budget == pytest.approx(2.3)  # 40 x 0.8 saved: its ceiling
    assert over.expected(over.aim())[0] <= 1.3 + 1e-9
    # The same answers read from the ledger's history (no job key) are not this run's spending.
    for polls_each, model in ((3, over), (1, under)):
        history = model_after(polls_each, this_run=False)
        assert history.budget == pytest.approx(1.8)
        assert history.quantile(0.5) == model.quantile(0.5)
    assert over.aim() > model_after(3, this_run=False).aim()
    assert under.aim() < model_after(1, this_run=False).aim()


def test_a_fast_service_is_learned_from_the_first_answers():
    # The documented 6-12 s is wrong by 100x: the probe ladder's lowest rung finds the first jobs done,
    # the prior goes, and the jobs already waiting for ~10 s first polls are re-aimed at once.
    polls, delay, wall, reaims, model = simulate_first_run(lambda r: r.uniform(0.05, 0.1), 64, interval=0.05)
    assert not model.prior_active
    assert model.aim() <= 0.15
    assert wall <= 1.0  # not 64 / 32 x the prior's ~10 s aim
    assert polls <= 2.0
    assert reaims > 0


def test_without_re_aiming_a_fast_service_waits_for_the_priors_aim():
    # The same run, but the waiting polls keep the aim they were given: the first batch waits ~10 s.
    m = LatencyModel(4.0, 0.05, 0.5, prior=(6.0, 12.0), seed=1)
    first = [m.first_delay(m.first_lead()) for _ in range(32)]
    assert max(first) >= 8.0
    m.observe(0.0, 0.05)
    assert max(m.first_delay(0.0) for _ in range(3)) <= 0.1


@pytest.mark.slow
@pytest.mark.parametrize("reaim", [True, False])
def test_the_dispatcher_re_aims_polls_in_flight_when_the_estimate_changes(tmp_path, reaim, monkeypatch):
    # The real dispatcher and emulator over loopback, both on one FakeClock: the emulator answers in
    # 0.05-0.1 s, the documented prior says 6-12 s. The ladder's low probes come back done, the prior
    # goes, and every job still waiting for a ~10 s first poll is polled at once.
    from helpers import FakeClock, make_photo

    from tagger import cloudsight as cs
    from tagger.emulator import Emulator
    from tagger.ledger.store import Ledger
    from tagger.pipeline.dispatch import Dispatcher, DispatchOptions
    from tagger.pipeline.plan import plan
    from tagger.prepare.normalise import PrepareOptions, Preparer

    for i in range(40):
        make_photo(tmp_path / "photos" / f"IMG_{i:04d}.JPG", seed=i, size=(96, 64))
    if not reaim:
        monkeypatch.setattr(Dispatcher, "_reaim", lambda self: None)
    clock = FakeClock()
    with Emulator(latency=(0.05, 0.1), seed=3, clock=clock) as emu, Ledger(str(tmp_path / "ledger.sqlite")) as ledger:
        plan(ledger, [str(tmp_path / "photos")], emu.url)
        options = DispatchOptions(
            endpoint=emu.url,
            params={"image_request[locale]": "en-US"},
            first_poll_delay=4.0,
            poll_interval=0.05,
            max_poll_interval=0.5,
        )
        with cs.API(cs.SimpleAuth(emu.key), base_url=emu.url) as api:
            dispatcher = Dispatcher(api, ledger, Preparer(PrepareOptions()), options, clock=clock, sleep=clock.sleep)
            tally = dispatcher.run()
        counters = emu.counters()
    assert tally.completed == 40 and tally.submitted == 40 and counters["duplicates"] == 0
    assert not dispatcher.latency.prior_active
    if reaim:
        assert clock.now < 2.0  # 40 jobs, 32 in flight, learned from the first answers
        assert counters["polls"] <= 2.0 * 40
    else:
        assert clock.now >= 8.0  # the first batch waited for the prior's aim
