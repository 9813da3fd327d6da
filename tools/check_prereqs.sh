#!/usr/bin/env bash
# System prerequisites of ttaccel: a C++ toolchain for Verilator, Icarus Verilog, and tclsh
# (the Vivado script's test runs it in a real Tcl interpreter).
# Installs what is missing with apt when running as root; otherwise says what to install.
set -euo pipefail

missing=()
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
command -v perl >/dev/null || missing+=(perl)
command -v iverilog >/dev/null || missing+=(iverilog)
command -v ccache >/dev/null || missing+=(ccache)   # Verilator rebuilds in ~0.3 s instead of ~8 s
command -v tclsh >/dev/null || missing+=(tcl)       # tests/hw/test_vivado.py

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "check_prereqs: installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    exit 0
fi
echo "check_prereqs: missing system packages: ${missing[*]}" >&2
echo "install them with: sudo apt-get install ${missing[*]}" >&2
exit 1
