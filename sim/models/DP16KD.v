// Behavioural model of the Lattice ECP5 DP16KD block RAM, for simulating the ECP5 proxy build
// (hw/memory.py). Written for this project from the primitive's documented behaviour (Lattice
// TN1264, "ECP5 and ECP5-5G Memory Usage Guide"): only what hw/memory.py uses is modelled, and
// anything else stops the simulation with a message.
//
//   16 Kbit, both ports of one aspect ratio: DATA_WIDTH_A == DATA_WIDTH_B, 18 (1K words), 9
//   (2K), 4 (4K), 2 (8K) or 1 (16K). The word address is the top bits of AD[13:0] (AD[13:4]
//   at width 18, AD[13:3] at 9, ...); at width 18, AD[1:0] are the write's byte enables
//   (bits 8:0 and 17:9). A port with CE set writes DI when WE is set (WRITEMODE "NORMAL":
//   its output then shows the written word) and otherwise reads; a read sees the memory as
//   it was before the cycle's writes. REGMODE "OUTREG" adds the output register, enabled by
//   OCE; "NOREG" shows the read word directly. RST resets the output (SYNC only), CS must
//   be 0 with CSDECODE "0b000", and every register starts at 0, as the contents do.
`default_nettype none
module DP16KD #(
    parameter DATA_WIDTH_A = 18, parameter DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG", parameter REGMODE_B = "NOREG",
    parameter RESETMODE = "SYNC", parameter ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000", parameter CSDECODE_B = "0b000",
    parameter WRITEMODE_A = "NORMAL", parameter WRITEMODE_B = "NORMAL",
    parameter GSR = "ENABLED"
) (
    input wire DIA0, DIA1, DIA2, DIA3, DIA4, DIA5, DIA6, DIA7, DIA8, DIA9, DIA10, DIA11, DIA12,
    input wire DIA13, DIA14, DIA15, DIA16, DIA17,
    input wire ADA0, ADA1, ADA2, ADA3, ADA4, ADA5, ADA6, ADA7, ADA8, ADA9, ADA10, ADA11, ADA12,
    input wire ADA13,
    input wire CEA, OCEA, CLKA, WEA, CSA0, CSA1, CSA2, RSTA,
    input wire DIB0, DIB1, DIB2, DIB3, DIB4, DIB5, DIB6, DIB7, DIB8, DIB9, DIB10, DIB11, DIB12,
    input wire DIB13, DIB14, DIB15, DIB16, DIB17,
    input wire ADB0, ADB1, ADB2, ADB3, ADB4, ADB5, ADB6, ADB7, ADB8, ADB9, ADB10, ADB11, ADB12,
    input wire ADB13,
    input wire CEB, OCEB, CLKB, WEB, CSB0, CSB1, CSB2, RSTB,
    output wire DOA0, DOA1, DOA2, DOA3, DOA4, DOA5, DOA6, DOA7, DOA8, DOA9, DOA10, DOA11,
    output wire DOA12, DOA13, DOA14, DOA15, DOA16, DOA17,
    output wire DOB0, DOB1, DOB2, DOB3, DOB4, DOB5, DOB6, DOB7, DOB8, DOB9, DOB10, DOB11,
    output wire DOB12, DOB13, DOB14, DOB15, DOB16, DOB17
);
    localparam W = DATA_WIDTH_A;
    localparam AB = (W == 18) ? 10 : (W == 9) ? 11 : (W == 4) ? 12 : (W == 2) ? 13 : 14;
    localparam WORDS = 1 << AB;

    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                       ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                       ADB2, ADB1, ADB0};
    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8,
                       DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8,
                       DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [AB-1:0] addr_a = ada[13 -: AB];
    wire [AB-1:0] addr_b = adb[13 -: AB];
    // Bits a write changes: all W, or at width 18 the 9-bit halves AD[0] / AD[1] enable.
    wire [17:0] keep_a = (W == 18) ? ~{{9{ADA1}}, {9{ADA0}}} : 18'd0;
    wire [17:0] keep_b = (W == 18) ? ~{{9{ADB1}}, {9{ADB0}}} : 18'd0;

    reg [W-1:0] mem [0:WORDS-1];
    reg [W-1:0] read_a = 0, read_b = 0, out_a = 0, out_b = 0;
    integer i;
    initial for (i = 0; i < WORDS; i = i + 1) mem[i] = 0;

    // One clock for both ports (hw/memory.py ties CLKA and CLKB to sync), so the reads see
    // the memory before either port's write of the same edge.
    always @(posedge CLKA) begin
        if (CEA) read_a <= WEA ? dia[W-1:0] : mem[addr_a];
        if (CEB) read_b <= WEB ? dib[W-1:0] : mem[addr_b];
        if (CEA && WEA)
            mem[addr_a] <= (mem[addr_a] & keep_a[W-1:0]) | (dia[W-1:0] & ~keep_a[W-1:0]);
        if (CEB && WEB)
            mem[addr_b] <= (mem[addr_b] & keep_b[W-1:0]) | (dib[W-1:0] & ~keep_b[W-1:0]);
        if (RSTA) out_a <= 0; else if (OCEA) out_a <= read_a;
        if (RSTB) out_b <= 0; else if (OCEB) out_b <= read_b;
    end

    wire [17:0] doa = (REGMODE_A == "OUTREG") ? out_a : read_a;
    wire [17:0] dob = (REGMODE_B == "OUTREG") ? out_b : read_b;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
            DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
            DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;

    initial begin
        if (DATA_WIDTH_A != DATA_WIDTH_B
            || (W != 18 && W != 9 && W != 4 && W != 2 && W != 1)
            || RESETMODE != "SYNC" || WRITEMODE_A != "NORMAL" || WRITEMODE_B != "NORMAL"
            || CSDECODE_A != "0b000" || CSDECODE_B != "0b000"
            || (REGMODE_A != "NOREG" && REGMODE_A != "OUTREG")
            || (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG")) begin
            $display("DP16KD model: unsupported parameters");
            $finish;
        end
    end
    always @(*) begin
        if ({CSA2, CSA1, CSA0, CSB2, CSB1, CSB0} !== 6'd0) begin
            $display("DP16KD model: chip selects other than 0 are not modelled");
            $finish;
        end
        if (CLKA !== CLKB) begin
            $display("DP16KD model: CLKA and CLKB must be the same clock");
            $finish;
        end
    end
endmodule
`default_nettype wire
