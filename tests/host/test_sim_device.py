"""The sim backend: the generated RTL in Verilator behind the Device interface, driven directly
(no driver) and checked bit for bit against the spec's reference executor.

One 4 x 4 build (``SMALL_BOARD``) per test session, reused from ``build/simboard/`` when the
Verilog and the harness are unchanged. Random programs print their seed (replay with
``TTACCEL_SEED``).
"""

from __future__ import annotations

import numpy as np
import pytest

from ttaccel.host.device import DeviceError
from ttaccel.host.sim import SimDevice
from ttaccel.host.sim_build import SMALL_BOARD, build_simboard
from ttaccel.sim.engine_programs import random_tt_case, seed000_case
from ttaccel.sim.runner import test_seed
from ttaccel.spec.isa import Load, Machine, encode_program, execute, execute_stream, load_beats
from ttaccel.spec.regmap import ERROR_CODES, IP_IDENTIFIER, REGMAP, config_register_values

CONFIG = SMALL_BOARD
TLAST_ERROR = next(code for code, text in ERROR_CODES.items() if "TLAST" in text)
POLLS = 200  # polls before a test gives up on a run (each advances up to poll_cycles)


@pytest.fixture(scope="module")
def library():
    return build_simboard(CONFIG).library


@pytest.fixture
def device(library):
    dev = SimDevice(library)
    yield dev
    dev.close()


def start(dev: SimDevice, program, data, receive_beats: int, *, arm_first: bool = False):
    """The run protocol: PROGRAM_LENGTH, CONTROL.start, arm both transfers (or arm first)."""
    stream = np.concatenate([encode_program(program), np.asarray(data, np.uint64)])
    dev.write("PROGRAM_LENGTH", instructions=len(program))
    if arm_first:
        dev.start_transfers(stream, receive_beats)
        dev.write("CONTROL", start=1)
    else:
        dev.write("CONTROL", start=1)
        dev.start_transfers(stream, receive_beats)


def wait_done(dev: SimDevice, polls: int = POLLS) -> int:
    """Poll STATUS until done or error (and both transfers complete); the last STATUS word."""
    status_of = REGMAP["STATUS"].field
    for _ in range(polls):
        status = dev.read("STATUS")
        if status_of("error").extract(status):
            return status
        if status_of("done").extract(status) and dev.transfers_done():
            return status
    raise AssertionError(f"no done after {polls} polls; {dev.transfer_state()}")


def run(dev: SimDevice, program, data, reference, **kwargs) -> np.ndarray:
    """One run that must finish with done; returns the received beats."""
    start(dev, program, data, reference.output.size, **kwargs)
    status = wait_done(dev)
    assert status == REGMAP["STATUS"].field("done").mask, f"STATUS {status:#x}"
    got = dev.received()
    dev.write("STATUS", done=1)
    return got


def assert_counters(dev: SimDevice, program, reference, since: dict | None = None) -> None:
    """The engine's counters equal the reference's; the output transfer ended exactly on its
    last beat with TLAST and every beat had all TKEEP bits (the harness's cumulative counts
    unchanged since ``since``, default: since the board was created)."""
    harness = dev.counters()
    assert harness["out_received"] == reference.output.size
    assert harness["out_ended_by_tlast"] == (reference.output.size > 0)
    for name in ("tlast_early", "tlast_missing", "keep_errors"):
        assert harness[name] == (since or {}).get(name, 0), name
    assert dev.read_counter("MACS_ISSUED") == reference.macs_issued
    assert dev.read_counter("INSTRUCTIONS") == len(program) == reference.instructions
    assert dev.read_field("PC", "dispatched") == len(program)
    busy, stall = dev.read_counter("BUSY_CYCLES"), dev.read_counter("STALL_CYCLES")
    assert busy > 0 and stall < busy


def random_case(rng):
    case = random_tt_case(rng, CONFIG, 0)
    reference = execute_stream(
        np.concatenate([encode_program(case.program), case.data]), len(case.program), CONFIG
    )
    return case, reference


def test_identity_and_configuration_registers(device):
    assert device.read("ID") == IP_IDENTIFIER
    for name, word in config_register_values(CONFIG).items():
        assert device.read(name) == word, name


def test_random_tt_layers_bit_exact(device):
    seed = test_seed()
    rng = np.random.default_rng(seed)
    for i in range(6):
        case, reference = random_case(rng)
        got = run(device, case.program, case.data, reference, arm_first=bool(i % 2))
        assert np.array_equal(got, reference.output), f"seed {seed} {case.name}: beats differ"
        np.testing.assert_array_equal(case.decode(got), case.want, err_msg=case.name)
        assert_counters(device, case.program, reference)
    assert device.violations == 0


def test_resident_cores_several_runs(device):
    """Setup once (cores and bias stay in WBUF/BIAS), then several run programs on new inputs;
    every run equals the reference executor continuing from the setup's machine state."""
    seed = test_seed()
    rng = np.random.default_rng(seed)
    compiled = random_tt_case(rng, CONFIG, 0).layer
    machine = Machine.empty(CONFIG)
    setup = execute(compiled.setup, CONFIG, compiled.setup_stream, machine)
    assert setup.output.size == 0
    run(device, compiled.setup, compiled.setup_stream, setup)
    for batch in range(4):
        x = rng.integers(-128, 128, size=(compiled.tokens, compiled.in_features)).astype(np.int8)
        data = compiled.input_stream(x)
        reference = execute(compiled.run, CONFIG, data, machine)
        got = run(device, compiled.run, data, reference)
        assert np.array_equal(got, reference.output), f"seed {seed} batch {batch}"
        assert_counters(device, compiled.run, reference)
    assert device.violations == 0


@pytest.mark.parametrize(("idle", "stall"), [(0.3, 0.0), (0.0, 0.5), (0.4, 0.4)])
def test_idle_cycles_and_back_pressure_change_nothing_but_time(library, idle, stall):
    seed = test_seed()
    rng = np.random.default_rng(seed)
    case, reference = random_case(rng)
    while reference.output.size < 24:  # enough output beats that some surely meet a stall
        case, reference = random_case(rng)
    with SimDevice(library) as calm, SimDevice(library, seed=seed, input_idle=idle,
                                               output_stall=stall) as rough:  # fmt: skip
        want = run(calm, case.program, case.data, reference)
        got = run(rough, case.program, case.data, reference)
        assert np.array_equal(want, reference.output)
        assert np.array_equal(got, reference.output), f"seed {seed} {case.name}"
        assert rough.read_counter("MACS_ISSUED") == reference.macs_issued
        # the stalls really happened (and only on the rough board)
        assert (rough.counters()["in_idle_cycles"] > 0) == (idle > 0)
        assert (rough.counters()["out_stall_cycles"] > 0) == (stall > 0)
        assert calm.counters()["in_idle_cycles"] == calm.counters()["out_stall_cycles"] == 0
        assert rough.violations == 0 and calm.violations == 0


def hang(device: SimDevice):
    """Start a run whose output is held back (TREADY low forever) and check how the hang
    looks: STATUS polls never see done, each advances the polling quantum, the stuck beat is
    offered; returns ``(case, reference)``."""
    seed = test_seed()
    rng = np.random.default_rng(seed)
    case, reference = random_case(rng)
    while reference.output.size < 2:  # a run with output beats to hold back
        case, reference = random_case(rng)
    poll = 5_000
    device.set_poll_cycles(poll)
    device.hold_output(True)
    start(device, case.program, case.data, reference.output.size)
    done = REGMAP["STATUS"].field("done")
    for _ in range(20):
        before = device.cycles
        status = device.read("STATUS")
        assert not done.extract(status), "done although the output never moved"
        assert device.cycles - before >= poll, "a polling read must advance simulated time"
    assert not device.transfers_done()
    state = device.transfer_state()
    assert state.received == 0 and state.to_receive == reference.output.size
    assert state.extra["out_tvalid"] == 1, "the stuck beat is offered"
    assert REGMAP["STATUS"].field("busy").extract(status) == 1
    before = device.cycles  # other registers are a snapshot: bus cycles only
    busy = device.read_counter("BUSY_CYCLES")
    assert device.read_field("PC", "dispatched") <= len(case.program)
    assert device.cycles - before < 20 and busy <= device.cycles
    assert device.violations == 0, "the held beat stayed valid and unchanged"
    with pytest.raises(DeviceError, match="in progress"):
        device.start_transfers(case.data, 1)
    return case, reference


def abort_and_soft_reset(device: SimDevice) -> None:
    device.abort_transfers()
    device.hold_output(False)
    device.write("CONTROL", soft_reset=1)
    device.write("STATUS", done=1, error=1)
    status = device.read("STATUS")
    assert status == 0, f"STATUS {status:#x} after the soft reset"


def test_output_held_low_hangs_then_abort_and_soft_reset_recover(device):
    case, reference = hang(device)
    abort_and_soft_reset(device)
    if device.counters()["out_tvalid"]:
        # The beat that waited at the soft reset is still offered (the AXI4-Stream rule,
        # spec.isa "Errors, soft reset"): a one-beat receive takes it, unchanged, no TLAST.
        device.start_transfers(np.empty(0, np.uint64), 1)
        assert device.transfers_done()
        np.testing.assert_array_equal(device.received(), reference.output[:1])
        assert device.counters()["out_ended_by_tlast"] == 0
        assert device.counters()["out_tvalid"] == 0, "nothing follows the waiting beat"
    # the engine is idle again: the same (cold) program now runs exactly
    since = device.counters()
    got = run(device, case.program, case.data, reference)
    assert np.array_equal(got, reference.output), f"{case.name} after recovery"
    assert_counters(device, case.program, reference, since)
    assert device.violations == 0


def test_a_beat_waiting_at_soft_reset_stays_offered_unchanged(device):
    hang(device)
    abort_and_soft_reset(device)
    counters = device.counters()
    assert counters["out_tvalid"] == 1 and counters["unarmed_changes"] == 0, counters


def test_tlast_inside_a_load_is_error_5_and_the_next_run_is_exact(device):
    seed = test_seed()
    rng = np.random.default_rng(seed)
    case, reference = random_case(rng)
    first = next(i for i, ins in enumerate(case.program) if isinstance(ins, Load))
    while load_beats(case.program[first], CONFIG) < 2:
        case, reference = random_case(rng)
        first = next(i for i, ins in enumerate(case.program) if isinstance(ins, Load))
    short = load_beats(case.program[first], CONFIG) - 1  # TLAST one beat early
    start(device, case.program, case.data[:short], reference.output.size)
    status = wait_done(device)
    field = REGMAP["STATUS"].field
    assert field("error").extract(status) == 1 and field("done").extract(status) == 0
    assert field("busy").extract(status) == 0
    assert field("error_code").extract(status) == TLAST_ERROR
    assert field("error_pc").extract(status) == first
    device.abort_transfers()
    device.write("CONTROL", soft_reset=1)
    device.write("STATUS", error=1)
    got = run(device, case.program, case.data, reference)
    assert np.array_equal(got, reference.output), f"seed {seed} {case.name}"


def test_register_reads_advance_time_only_while_something_runs(device):
    """An idle board: a read is one bus transaction (a few cycles), not a polling quantum."""
    before = device.cycles
    device.read("STATUS")
    assert 0 < device.cycles - before < 20
    device.write("CONTROL", irq_enable=1)
    assert device.read_field("CONTROL", "irq_enable") == 1


def test_interrupt_follows_done_and_irq_enable(device):
    case, reference = random_case(np.random.default_rng(test_seed()))
    device.write("PROGRAM_LENGTH", instructions=len(case.program))
    device.write("CONTROL", start=1, irq_enable=1)
    device.start_transfers(np.concatenate([encode_program(case.program), case.data]),
                           reference.output.size)  # fmt: skip
    wait_done(device)
    device.step(2)
    assert device.interrupt
    device.write("STATUS", done=1)
    device.step(2)
    assert not device.interrupt


def test_a_seed000_sized_layer_runs_exactly(device):
    """Seed 000's attention TT layer (768 x 768, ranks 24/30/24) with 8 tokens: resident cores,
    one run; the long program exercises deep buffers and many tiles."""
    seed = test_seed()
    case = seed000_case(np.random.default_rng(seed), "attention", 8, CONFIG, cold=False)
    compiled = case.layer
    machine = Machine.empty(CONFIG)
    setup = execute(compiled.setup, CONFIG, compiled.setup_stream, machine)
    run(device, compiled.setup, compiled.setup_stream, setup)
    reference = execute(compiled.run, CONFIG, case.data, machine)
    got = run(device, compiled.run, case.data, reference)
    assert np.array_equal(got, reference.output), f"seed {seed}"
    np.testing.assert_array_equal(compiled.decode_output(got), case.want)
    assert_counters(device, compiled.run, reference)


def test_bad_arguments_are_named(device, tmp_path):
    with pytest.raises(ValueError, match="send must be a 1-D array"):
        device.start_transfers(np.zeros((2, 2), np.uint64), 0)
    with pytest.raises(ValueError, match="input_idle"):
        device.set_stalls(input_idle=1.0)
    with pytest.raises(DeviceError, match="does not exist"):
        SimDevice(tmp_path / "missing.so")
    device.close()
    with pytest.raises(DeviceError, match="closed"):
        device.read("ID")


def test_a_larger_output_transfer_ends_at_tlast_like_the_dma(device):
    """S2MM armed for more beats than the run sends: the transfer ends at the run's TLAST (the
    harness, like the AXI DMA, reports fewer beats), and the beats are the reference's."""
    rng = np.random.default_rng(test_seed())
    case, reference = random_case(rng)
    start(device, case.program, case.data, reference.output.size + 5)
    wait_done(device)
    assert device.transfers_done()
    assert np.array_equal(device.received(), reference.output)
    harness = device.counters()
    assert harness["out_ended_by_tlast"] == 1 and harness["tlast_early"] == 1
    state = device.transfer_state()
    assert (state.received, state.to_receive) == (reference.output.size, reference.output.size + 5)
