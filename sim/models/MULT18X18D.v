// Behavioural model of the Lattice ECP5 MULT18X18D, for simulating the ECP5 proxy build
// (hw/dsp.py). Written for this project from the primitive's documented behaviour (Lattice
// TN1267, "ECP5 and ECP5-5G sysDSP Usage Guide"): only what hw/dsp.py uses is modelled, and
// anything else stops the simulation with a message.
//
//   P = A * B, A and B 18 bits, each signed when SIGNEDA / SIGNEDB is 1, else unsigned; the
//   36-bit product is exact. REG_INPUTA_CLK / REG_INPUTB_CLK / REG_OUTPUT_CLK: "NONE"
//   (combinational) or "CLK0" (a register on CLK0, enabled by CE0, reset to 0 by RST0 when
//   RESETMODE is "SYNC"). REG_PIPELINE_CLK must be "NONE". SIGNEDA / SIGNEDB are taken as
//   they are (hw/dsp.py ties them to constants). SOURCEA / SOURCEB must be 0 (no shift
//   chains).
`default_nettype none
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTA_CE = "CE0",
    parameter REG_INPUTA_RST = "RST0", parameter REG_INPUTB_CLK = "NONE",
    parameter REG_INPUTB_CE = "CE0", parameter REG_INPUTB_RST = "RST0",
    parameter REG_PIPELINE_CLK = "NONE", parameter REG_OUTPUT_CLK = "NONE",
    parameter REG_OUTPUT_CE = "CE0", parameter REG_OUTPUT_RST = "RST0",
    parameter RESETMODE = "SYNC"
) (
    input wire A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input wire B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input wire CLK0, CE0, RST0, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    output wire P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16,
    output wire P17, P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31,
    output wire P32, P33, P34, P35
);
    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2,
                     A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2,
                     B1, B0};
    reg [17:0] a_q = 18'd0, b_q = 18'd0;
    reg [35:0] p_q = 36'd0;
    wire [17:0] a_in = (REG_INPUTA_CLK == "CLK0") ? a_q : a;
    wire [17:0] b_in = (REG_INPUTB_CLK == "CLK0") ? b_q : b;
    // Exact 36-bit product: extend each operand to 36 bits as its SIGNED input says.
    wire [35:0] a_ext = {{18{SIGNEDA & a_in[17]}}, a_in};
    wire [35:0] b_ext = {{18{SIGNEDB & b_in[17]}}, b_in};
    wire [35:0] product = a_ext * b_ext;
    wire [35:0] p = (REG_OUTPUT_CLK == "CLK0") ? p_q : product;

    always @(posedge CLK0) begin
        if (RST0) begin
            a_q <= 18'd0; b_q <= 18'd0; p_q <= 36'd0;
        end else if (CE0) begin
            a_q <= a; b_q <= b; p_q <= product;
        end
    end

    initial begin
        if (REG_PIPELINE_CLK != "NONE" || RESETMODE != "SYNC"
            || (REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0")
            || (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0")
            || (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0")) begin
            $display("MULT18X18D model: unsupported parameters");
            $finish;
        end
    end
    always @(*) begin
        if (SOURCEA !== 1'b0 || SOURCEB !== 1'b0) begin
            $display("MULT18X18D model: SOURCEA/SOURCEB shift chains are not modelled");
            $finish;
        end
    end

    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20,
            P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2,
            P1, P0} = p;
endmodule
`default_nettype wire
