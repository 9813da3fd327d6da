// The simulated board: a C++ harness around the Verilator model of ttaccel.hw.top.ZynqTop.
//
// The harness plays the Zynq side of the board: the AXI4-Lite manager (the PS's GP port) and
// both ends of the AXI DMA (MM2S drives s_axis from a host buffer, S2MM drives m_axis into a
// host buffer: host memory is the DDR). Whole transfers run in C++, so no Python runs per
// cycle; Python (ttaccel.host.sim) calls the C ABI below through ctypes.
//
// Why ctypes and a C ABI (not pybind11/nanobind): the interface is per transaction (a register
// access, a transfer, a run of cycles), never per cycle, so the call overhead (~1 us) does not
// matter, and ctypes needs nothing but the standard library: the same built library loads in
// the development venv and in the pynq test venv (NumPy 1.26, no compiler bindings).
//
// One clock cycle (sb_step):
//   1. aclk low: the harness drives every DUT input for this cycle (stream beats, TREADY, AXI4-Lite
//      channels), the model evaluates, the DUT's combinational outputs settle;
//   2. the harness samples every handshake (VALID && READY) and checks the output stream's rules;
//   3. aclk high: the model evaluates the rising edge (the handshakes of step 2 take effect);
//   4. the harness advances its own state by the handshakes of step 2.
//
// Stream rules the harness keeps and checks:
//   * input (s_axis): beat i of the armed input buffer, TLAST on the last one; once TVALID is
//     raised it stays until the handshake (random idle cycles are only inserted between beats);
//   * output (m_axis): TREADY only while an output transfer is armed and has room; random
//     back-pressure and a "hold TREADY low forever" switch; a beat with TLAST ends the transfer
//     early, like the AXI DMA's S2MM (sb_counters reports it);
//   * protocol check: a beat offered (m_axis_tvalid) but not taken must be offered again, with the
//     same TDATA and TLAST, on the next cycle; each break of that rule while an output transfer
//     is armed (sb_start_transfers up to sb_abort / sb_reset) counts one violation. A break while
//     none is armed (after sb_abort the DMA channel is reset and listens to nothing; the
//     accelerator's soft reset then drops the stuck beat, as the register map documents) is
//     counted apart, as unarmed_changes. aresetn low is never a violation.
//
// All functions return 0 on success; a negative value is an error code (SB_E_*).

#include <cstdint>
#include <cstring>
#include <memory>

#include "Vtop.h"
#include "verilated.h"

// Verilator calls this from $finish / $stop; the generated RTL has none, but the symbol is needed
// when the model is linked without --exe.
double sc_time_stamp() { return 0; }

namespace {

enum : int {
    SB_OK = 0,
    SB_E_BUSY = -1,        // a transfer is still in progress
    SB_E_AXI_TIMEOUT = -2, // an AXI4-Lite transaction got no response within axi_timeout cycles
    SB_E_ARGUMENT = -3,    // a null pointer or an out-of-range argument
    SB_E_AXI_RESP = -4,    // the subordinate answered SLVERR / DECERR
};

// xorshift64*: small, seeded, reproducible on every platform.
struct Rng {
    uint64_t state = 0x9E3779B97F4A7C15ull;
    void seed(uint64_t s) { state = s ? s : 0x9E3779B97F4A7C15ull; }
    uint64_t next() {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545F4914F6CDD1Dull;
    }
    // true with probability threshold / 2**32
    bool chance(uint32_t threshold) { return uint32_t(next() >> 32) < threshold; }
};

uint32_t probability_threshold(double p) {
    if (!(p > 0.0)) return 0;
    if (p >= 1.0) return 0xFFFFFFFFu;
    return uint32_t(p * 4294967296.0);
}

}  // namespace

struct SimBoard {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<Vtop> top;
    uint64_t cycles = 0;

    // input transfer (MM2S): host buffer -> s_axis
    const uint64_t* in_data = nullptr;
    uint64_t in_beats = 0, in_sent = 0;
    bool in_offering = false;  // TVALID raised for beat in_sent and not yet taken

    // output transfer (S2MM): m_axis -> host buffer
    uint64_t* out_data = nullptr;
    uint64_t out_capacity = 0, out_received = 0;
    bool out_armed = false, out_ended_by_tlast = false;
    uint64_t out_tlast_early = 0;    // TLAST on a beat before the armed transfer's last one
    uint64_t out_tlast_missing = 0;  // the armed transfer filled without TLAST on its last beat
    uint64_t out_keep_errors = 0;    // a transferred beat with TKEEP not all ones

    // stream randomness
    Rng rng;
    uint32_t idle_threshold = 0, stall_threshold = 0;
    bool hold_tready_low = false;
    bool tready_now = false;

    // output protocol check
    bool out_pending = false;  // last cycle: m_axis_tvalid high, TREADY low
    uint64_t pending_data = 0;
    uint8_t pending_last = 0;
    uint64_t violations = 0;
    uint64_t unarmed_changes = 0;
    uint64_t in_idle_cycles = 0;    // cycles with input beats left but TVALID low (random idle)
    uint64_t out_stall_cycles = 0;  // armed output, a beat offered on m_axis, TREADY low

    // total beats ever moved (for the counters)
    uint64_t total_sent = 0, total_received = 0;

    // AXI4-Lite manager state for the current transaction
    uint64_t axi_timeout = 10000;

    // register polling (sb_reg_read advances time, see there)
    uint64_t poll_cycles = 20000;
    int32_t status_offset = -1;  // STATUS offset, or -1: no busy polling
    uint32_t busy_mask = 0;
};

namespace {

bool transfers_complete(const SimBoard* b) {
    bool in_done = b->in_sent >= b->in_beats;
    bool out_done = !b->out_armed || b->out_received >= b->out_capacity || b->out_ended_by_tlast;
    return in_done && out_done;
}

// Drive the stream inputs for this cycle (aclk low); AXI4-Lite inputs are left as set.
void drive_streams(SimBoard* b) {
    Vtop* t = b->top.get();
    // input: a beat offered stays offered until taken; new beats may wait a random idle cycle
    if (!b->in_offering && b->in_sent < b->in_beats) {
        if (!(b->idle_threshold && b->rng.chance(b->idle_threshold))) b->in_offering = true;
    }
    if (!b->in_offering && b->in_sent < b->in_beats) b->in_idle_cycles++;
    if (b->in_offering) {
        t->s_axis_tvalid = 1;
        t->s_axis_tdata = b->in_data[b->in_sent];
        t->s_axis_tlast = (b->in_sent + 1 == b->in_beats) ? 1 : 0;
    } else {
        t->s_axis_tvalid = 0;
        t->s_axis_tdata = 0;
        t->s_axis_tlast = 0;
    }
    // output: ready while armed with room, unless held low or randomly stalled
    bool room = b->out_armed && !b->out_ended_by_tlast && b->out_received < b->out_capacity;
    bool ready = room && !b->hold_tready_low &&
                 !(b->stall_threshold && b->rng.chance(b->stall_threshold));
    t->m_axis_tready = ready ? 1 : 0;
    b->tready_now = ready;
}

// One clock cycle; the AXI4-Lite inputs must already be driven.
// Returns the handshakes of this cycle through the pointers (may be null).
void cycle(SimBoard* b, bool* aw_hs, bool* w_hs, bool* b_hs, bool* ar_hs, bool* r_hs,
           uint32_t* rdata, uint32_t* resp) {
    Vtop* t = b->top.get();
    drive_streams(b);
    t->aclk = 0;
    t->eval();

    // sample the handshakes before the rising edge
    bool in_hs = t->s_axis_tvalid && t->s_axis_tready;
    bool out_valid = t->m_axis_tvalid;
    bool out_hs = out_valid && b->tready_now;
    uint64_t out_data = t->m_axis_tdata;
    uint8_t out_last = t->m_axis_tlast;
    uint8_t out_keep = t->m_axis_tkeep;
    if (aw_hs) *aw_hs = t->s_axi_awvalid && t->s_axi_awready;
    if (w_hs) *w_hs = t->s_axi_wvalid && t->s_axi_wready;
    if (b_hs) *b_hs = t->s_axi_bvalid && t->s_axi_bready;
    if (ar_hs) *ar_hs = t->s_axi_arvalid && t->s_axi_arready;
    if (r_hs) *r_hs = t->s_axi_rvalid && t->s_axi_rready;
    if (rdata) *rdata = t->s_axi_rdata;
    if (resp) *resp = (b_hs && *b_hs) ? t->s_axi_bresp : t->s_axi_rresp;

    // AXI4-Stream rule: an offered beat stays offered, unchanged, until it is taken
    if (t->aresetn && b->out_pending) {
        if (!out_valid || out_data != b->pending_data || out_last != b->pending_last) {
            if (b->out_armed)
                b->violations++;
            else
                b->unarmed_changes++;
        }
    }
    if (t->aresetn && out_valid && !out_hs && b->out_armed) b->out_stall_cycles++;
    b->out_pending = t->aresetn && out_valid && !out_hs;
    b->pending_data = out_data;
    b->pending_last = out_last;

    t->aclk = 1;
    t->eval();
    b->cycles++;
    b->context->timeInc(1);

    if (in_hs) {
        b->in_sent++;
        b->total_sent++;
        b->in_offering = false;
    }
    if (out_hs) {
        if (out_keep != 0xFF) b->out_keep_errors++;
        b->out_data[b->out_received++] = out_data;
        b->total_received++;
        if (out_last) {
            if (b->out_received < b->out_capacity) b->out_tlast_early++;
            b->out_ended_by_tlast = true;
        } else if (b->out_received == b->out_capacity) {
            b->out_tlast_missing++;
        }
    }
}

void idle_axi(Vtop* t) {
    t->s_axi_awvalid = 0;
    t->s_axi_wvalid = 0;
    t->s_axi_bready = 0;
    t->s_axi_arvalid = 0;
    t->s_axi_rready = 0;
}

uint64_t run_until_complete(SimBoard* b, uint64_t max_cycles) {
    uint64_t n = 0;
    idle_axi(b->top.get());
    while (n < max_cycles && !transfers_complete(b)) {
        cycle(b, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
        n++;
    }
    return n;
}

int axi_read(SimBoard* b, uint32_t offset, uint32_t* value) {
    Vtop* t = b->top.get();
    idle_axi(t);
    t->s_axi_araddr = offset;
    t->s_axi_arvalid = 1;
    t->s_axi_rready = 1;
    bool addr_done = false;
    for (uint64_t n = 0; n < b->axi_timeout; n++) {
        bool ar_hs, r_hs;
        uint32_t rdata, resp;
        cycle(b, nullptr, nullptr, nullptr, &ar_hs, &r_hs, &rdata, &resp);
        if (ar_hs) {
            addr_done = true;
            t->s_axi_arvalid = 0;
        }
        if (r_hs && addr_done) {
            idle_axi(t);
            *value = rdata;
            return resp ? SB_E_AXI_RESP : SB_OK;
        }
    }
    idle_axi(t);
    return SB_E_AXI_TIMEOUT;
}

}  // namespace

extern "C" {

// A fresh board: model constructed, aresetn low (call sb_reset before use).
SimBoard* sb_create(void) {
    SimBoard* b = new SimBoard();
    b->context = std::make_unique<VerilatedContext>();
    b->top = std::make_unique<Vtop>(b->context.get(), "top");
    Vtop* t = b->top.get();
    t->aclk = 0;
    t->aresetn = 0;
    idle_axi(t);
    t->s_axi_awaddr = 0;
    t->s_axi_wdata = 0;
    t->s_axi_wstrb = 0;
    t->s_axi_araddr = 0;
    t->s_axis_tvalid = 0;
    t->s_axis_tdata = 0;
    t->s_axis_tlast = 0;
    t->m_axis_tready = 0;
    t->eval();
    return b;
}

void sb_destroy(SimBoard* b) {
    if (!b) return;
    b->top->final();
    delete b;
}

// aresetn low for `cycles` cycles (at least 1), then high for 2 cycles. Both transfers are
// abandoned (the DMA is reset with the accelerator) and the protocol checker forgets its beat.
int sb_reset(SimBoard* b, uint32_t cycles) {
    if (!b) return SB_E_ARGUMENT;
    Vtop* t = b->top.get();
    b->in_data = nullptr;
    b->in_beats = b->in_sent = 0;
    b->in_offering = false;
    b->out_armed = false;
    b->out_ended_by_tlast = false;
    b->out_capacity = b->out_received = 0;
    idle_axi(t);
    t->aresetn = 0;
    for (uint32_t i = 0; i < (cycles ? cycles : 1); i++)
        cycle(b, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
    t->aresetn = 1;
    for (int i = 0; i < 2; i++) cycle(b, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
    b->out_pending = false;
    return SB_OK;
}

// Random idle cycles between input beats (probability per cycle) and random TREADY-low cycles
// on the output, from the xorshift generator seeded with `seed` (0 picks a fixed seed).
int sb_set_stalls(SimBoard* b, uint64_t seed, double input_idle, double output_stall) {
    if (!b || !(input_idle >= 0.0 && input_idle < 1.0) ||
        !(output_stall >= 0.0 && output_stall < 1.0))
        return SB_E_ARGUMENT;
    b->rng.seed(seed);
    b->idle_threshold = probability_threshold(input_idle);
    b->stall_threshold = probability_threshold(output_stall);
    return SB_OK;
}

// Hold output TREADY low while `hold` is nonzero (hang tests).
int sb_hold_output(SimBoard* b, int hold) {
    if (!b) return SB_E_ARGUMENT;
    b->hold_tready_low = hold != 0;
    return SB_OK;
}

// Register polling. With status_offset >= 0, a sb_reg_read of that register (STATUS) first
// runs until both transfers are complete or `poll_cycles` cycles have passed, then keeps reading
// it (real AXI4-Lite reads) while (value & busy_mask) != 0, up to the same quantum; reads of
// every other register take their bus cycles only, so a register dump after a hang is one
// snapshot, not a register per quantum. With status_offset < 0 every read advances time so.
// axi_timeout: cycles one AXI4-Lite transaction may take before SB_E_AXI_TIMEOUT.
int sb_set_polling(SimBoard* b, uint64_t poll_cycles, int32_t status_offset, uint32_t busy_mask,
                   uint64_t axi_timeout) {
    if (!b || axi_timeout == 0) return SB_E_ARGUMENT;
    b->poll_cycles = poll_cycles;
    b->status_offset = status_offset;
    b->busy_mask = busy_mask;
    b->axi_timeout = axi_timeout;
    return SB_OK;
}

// Arm the output transfer (S2MM) into `data` (capacity `beats`, 0: none), then start the input
// transfer (MM2S) from `send` (`send_beats` beats, TLAST on the last). Both buffers must stay
// valid until the transfers complete or are aborted. SB_E_BUSY if one is still in progress.
int sb_start_transfers(SimBoard* b, const uint64_t* send, uint64_t send_beats, uint64_t* data,
                       uint64_t beats) {
    if (!b || (send_beats && !send) || (beats && !data)) return SB_E_ARGUMENT;
    if (!transfers_complete(b)) return SB_E_BUSY;
    b->out_data = data;
    b->out_capacity = beats;
    b->out_received = 0;
    b->out_ended_by_tlast = false;
    b->out_armed = beats > 0;
    b->in_data = send;
    b->in_beats = send_beats;
    b->in_sent = 0;
    b->in_offering = false;
    return SB_OK;
}

// Abandon both transfers (the DMA channels' reset); beats already moved stay counted.
int sb_abort(SimBoard* b) {
    if (!b) return SB_E_ARGUMENT;
    b->in_data = nullptr;
    b->in_beats = b->in_sent = 0;
    b->in_offering = false;
    b->out_armed = false;
    b->out_ended_by_tlast = false;
    b->out_capacity = 0;
    return SB_OK;
}

// 1 when the input is sent whole and the armed output is complete (full, or ended by TLAST).
int sb_transfers_done(const SimBoard* b) { return b && transfers_complete(b) ? 1 : 0; }

// Run exactly `cycles` cycles (AXI4-Lite idle); streams proceed.
uint64_t sb_step(SimBoard* b, uint64_t cycles) {
    if (!b) return 0;
    idle_axi(b->top.get());
    for (uint64_t i = 0; i < cycles; i++)
        cycle(b, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
    return cycles;
}

// Run until both transfers are complete or `max_cycles` have passed; returns the cycles run.
uint64_t sb_run(SimBoard* b, uint64_t max_cycles) {
    return b ? run_until_complete(b, max_cycles) : 0;
}

// One AXI4-Lite write of all four bytes: AW and W offered together, then B awaited.
int sb_reg_write(SimBoard* b, uint32_t offset, uint32_t value) {
    if (!b) return SB_E_ARGUMENT;
    Vtop* t = b->top.get();
    idle_axi(t);
    t->s_axi_awaddr = offset;
    t->s_axi_awvalid = 1;
    t->s_axi_wdata = value;
    t->s_axi_wstrb = 0xF;
    t->s_axi_wvalid = 1;
    t->s_axi_bready = 1;
    bool aw_done = false, w_done = false;
    for (uint64_t n = 0; n < b->axi_timeout; n++) {
        bool aw_hs, w_hs, b_hs;
        uint32_t resp;
        cycle(b, &aw_hs, &w_hs, &b_hs, nullptr, nullptr, nullptr, &resp);
        if (aw_hs) {
            aw_done = true;
            t->s_axi_awvalid = 0;
        }
        if (w_hs) {
            w_done = true;
            t->s_axi_wvalid = 0;
        }
        if (b_hs && aw_done && w_done) {
            idle_axi(t);
            return resp ? SB_E_AXI_RESP : SB_OK;
        }
    }
    idle_axi(t);
    return SB_E_AXI_TIMEOUT;
}

// One AXI4-Lite read; a read of STATUS first advances simulated time (see sb_set_polling), so
// a driver that polls STATUS always makes progress and a hang shows as the driver's deadline.
int sb_reg_read(SimBoard* b, uint32_t offset, uint32_t* value) {
    if (!b || !value) return SB_E_ARGUMENT;
    if (b->status_offset >= 0 && offset != uint32_t(b->status_offset))
        return axi_read(b, offset, value);
    uint64_t start = b->cycles;
    run_until_complete(b, b->poll_cycles);
    if (b->status_offset >= 0) {
        while (b->cycles - start < b->poll_cycles) {
            uint32_t status;
            int rc = axi_read(b, uint32_t(b->status_offset), &status);
            if (rc) return rc;
            if (!(status & b->busy_mask)) break;
            // let the run proceed a little between polls (reads take ~3 cycles each)
            uint64_t left = b->poll_cycles - (b->cycles - start);
            uint64_t chunk = left < 64 ? left : 64;
            idle_axi(b->top.get());
            for (uint64_t i = 0; i < chunk; i++)
                cycle(b, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
        }
    }
    return axi_read(b, offset, value);
}

// A raw AXI4-Lite read without advancing time first (tests of the bus itself).
int sb_reg_read_now(SimBoard* b, uint32_t offset, uint32_t* value) {
    if (!b || !value) return SB_E_ARGUMENT;
    return axi_read(b, offset, value);
}

// Counters, in this order (count: how many the caller's array holds, at most 17):
//  0 cycles          simulated clock cycles since sb_create
//  1 in_sent         beats of the current input transfer sent
//  2 in_beats        beats of the current input transfer
//  3 out_received    beats of the current output transfer received
//  4 out_capacity    beats the current output transfer was armed for (0: none)
//  5 out_ended       1 when the current output transfer was ended by TLAST
//  6 violations      output beats withdrawn or changed before their handshake
//  7 tlast_early     output transfers ended by a TLAST before their last beat
//  8 tlast_missing   output transfers filled without TLAST on the last beat
//  9 keep_errors     output beats with TKEEP not all ones
// 10 total_sent      input beats sent since sb_create
// 11 total_received  output beats received since sb_create
// 12 m_axis_tvalid   the DUT's output TVALID now (a beat waiting)
// 13 interrupt       the DUT's interrupt line now
// 14 unarmed_changes output beats withdrawn or changed while no output transfer was armed
// 15 in_idle_cycles  cycles with input beats left but TVALID low (random idle cycles)
// 16 out_stall_cycles cycles with an output transfer armed, a beat offered and TREADY low
int sb_counters(const SimBoard* b, uint64_t* out, uint32_t count) {
    if (!b || !out) return SB_E_ARGUMENT;
    const Vtop* t = b->top.get();
    uint64_t values[17] = {
        b->cycles,
        b->in_sent,
        b->in_beats,
        b->out_received,
        b->out_capacity,
        b->out_ended_by_tlast ? 1u : 0u,
        b->violations,
        b->out_tlast_early,
        b->out_tlast_missing,
        b->out_keep_errors,
        b->total_sent,
        b->total_received,
        uint64_t(t->m_axis_tvalid),
        uint64_t(t->__SYM__interrupt),
        b->unarmed_changes,
        b->in_idle_cycles,
        b->out_stall_cycles,
    };
    uint32_t n = count < 17 ? count : 17;
    std::memcpy(out, values, n * sizeof(uint64_t));
    return int(n);
}

// ABI version of this harness (Python checks it when loading a library).
int sb_abi_version(void) { return 3; }

}  // extern "C"
