# Recording stand-ins for the Vivado 2022.2 Tcl commands that hw/vivado.py's build.tcl uses.
#
# Sourced by tests/hw/test_vivado.py before build.tcl, in a plain tclsh. Every command that
# changes the design appends one tab-separated record to the file in $env(TTACCEL_RECORD):
#
#   project NAME DIR PART | file PATH | top NAME | ipx_package VENDOR LIBRARY ROOT
#   ipx_prop OBJECT NAME VALUE | ipx_assoc BUSIF CLOCK RESET | ipx_busif NAME | ipx_save VLNV
#   bd NAME | cell NAME VLNV | prop OBJECT NAME VALUE | automation RULE OBJECT CONFIG
#   net PIN PIN... | intf PIN PIN | addr SPACE SEGMENT OFFSET RANGE | step NAME ARGS
#
# Objects are checked the way Vivado would refuse them: a cell must exist before its pins are
# named, an IP VLNV must be in the catalog (Xilinx IP, or an IP this script packaged), files
# must exist, the packaged IP's bus interfaces exist only if the Verilog has their ports.
# Pin names themselves are checked in Python against tables of each IP's ports.

set ::rec [open $env(TTACCEL_RECORD) w]
set ::catalog {}
set ::cells [dict create]
set ::project ""
set ::project_dir ""
set ::verilog_ports {}
set ::core_props [dict create]

proc record {args} {
    puts $::rec [join $args "\t"]
    flush $::rec
}

proc option {arguments name {default ""}} {
    set i [lsearch -exact $arguments $name]
    if {$i < 0} { return $default }
    return [lindex $arguments [expr {$i + 1}]]
}

proc version {args} { return 2022.2 }

proc create_project {name dir args} {
    set part [option $args -part]
    if {$part eq ""} { error "create_project: no -part" }
    file mkdir $dir
    set ::project $name
    set ::project_dir $dir
    record project $name $dir $part
    return $name
}

proc add_files {args} {
    foreach path $args {
        if {[string match -* $path]} { continue }
        if {![file exists $path]} { error "add_files: $path does not exist" }
        # The packaged IP's ports: every 'input'/'output' declaration of the Verilog.
        set text [read [set f [open $path]]]
        close $f
        foreach {_ port} [regexp -all -inline {(?:input|output)\s+(?:wire\s+|reg\s+)?(?:\[[^\]]*\]\s*)?(\w+)} $text] {
            lappend ::verilog_ports $port
        }
        record file $path
    }
}

proc current_fileset {args} { return fileset:sources_1 }
proc current_project {args} { return project:$::project }
proc update_compile_order {args} {}
proc get_board_parts {args} { return {} }
proc update_ip_catalog {args} { record step update_ip_catalog }
proc close_project {args} { record step close_project; set ::project "" }

proc set_property {args} {
    set args [lsearch -all -inline -not -exact $args -quiet]
    if {[lindex $args 0] eq "-dict"} {
        set pairs [lindex $args 1]
        set objects [lindex $args 2]
    } else {
        set pairs [list [lindex $args 0] [lindex $args 1]]
        set objects [lindex $args 2]
    }
    if {[llength $objects] == 0} { error "set_property: no objects" }
    foreach object $objects {
        foreach {name value} $pairs {
            if {[string match core:* $object]} {
                dict set ::core_props $name $value
                record ipx_prop $object $name $value
            } elseif {[string match fileset:* $object] && $name eq "top"} {
                record top $value
            } else {
                record prop $object $name $value
            }
        }
    }
}

proc get_property {name object} {
    switch -- $name {
        PROGRESS { return "100%" }
        SLACK { return 0.25 }
        default { error "get_property: stand-in does not know $name" }
    }
}

namespace eval ipx {
    proc package_project {args} {
        set ::ipx_vendor [option $args -vendor]
        set ::ipx_library [option $args -library]
        set ::ipx_root [option $args -root_dir]
        if {$::ipx_vendor eq "" || $::ipx_library eq ""} { error "package_project: no vendor or library" }
        file mkdir $::ipx_root
        record ipx_package $::ipx_vendor $::ipx_library $::ipx_root
    }
    proc current_core {args} { return core:main }
    proc has_ports {prefix} {
        foreach port $::verilog_ports {
            if {[string match ${prefix}_* $port]} { return 1 }
        }
        return 0
    }
    # Vivado infers AXI interfaces from port prefixes; an interrupt only sometimes.
    proc get_bus_interfaces {name args} {
        if {$name in {s_axi s_axis m_axis} && [has_ports $name]} { return busif:$name }
        return {}
    }
    proc add_bus_interface {name core} { record ipx_busif $name; return busif:$name }
    proc add_port_map {name busif} {
        return portmap:[string range $busif 6 end]/$name
    }
    proc get_bus_parameters {name args} { return {} }
    proc add_bus_parameter {name busif} { return param:[string range $busif 6 end]/$name }
    proc associate_bus_interfaces {args} {
        set clock [option $args -clock]
        set reset [option $args -reset]
        foreach port [list $clock $reset] {
            if {$port ne "" && $port ni $::verilog_ports} {
                error "associate_bus_interfaces: no port $port in the packaged Verilog"
            }
        }
        record ipx_assoc [option $args -busif] $clock $reset
    }
    proc get_memory_maps {name args} {
        if {$name eq "s_axi" && [has_ports s_axi]} { return memmap:s_axi }
        return {}
    }
    proc add_memory_map {name core} { return memmap:$name }
    proc get_address_blocks {name args} { return {} }
    proc add_address_block {name memory_map} {
        return block:[string range $memory_map 7 end]/$name
    }
    proc create_xgui_files {core} {}
    proc update_checksums {core} {}
    proc check_integrity {core} {}
    proc save_core {core} {
        set vlnv $::ipx_vendor:$::ipx_library:[dict get $::core_props name]:[dict get $::core_props version]
        lappend ::catalog $vlnv
        record ipx_save $vlnv
    }
}

proc create_bd_design {name} { record bd $name }

proc create_bd_cell {args} {
    set type [option $args -type]
    set vlnv [option $args -vlnv]
    set name [lindex $args end]
    if {$type ne "ip"} { error "create_bd_cell: only -type ip here, not $type" }
    if {![string match xilinx.com:* $vlnv] && $vlnv ni $::catalog} {
        error "create_bd_cell: no IP $vlnv in the catalog (have: $::catalog)"
    }
    if {[dict exists $::cells $name]} { error "create_bd_cell: $name exists" }
    dict set ::cells $name $vlnv
    record cell $name $vlnv
    return cell:$name
}

proc get_bd_cells {args} {
    set out {}
    foreach name [lsearch -all -inline -not -glob $args -*] {
        if {![dict exists $::cells $name]} { error "get_bd_cells: no cell $name" }
        lappend out cell:$name
    }
    return $out
}

proc pin_object {kind path} {
    set cell [lindex [split $path /] 0]
    if {![dict exists $::cells $cell]} { error "$kind: no cell $cell for $path" }
    return $path
}
proc get_bd_pins {path} { return pin:[pin_object get_bd_pins $path] }
proc get_bd_intf_pins {path} { return intf:[pin_object get_bd_intf_pins $path] }

proc strip {prefix objects} {
    set out {}
    foreach object $objects {
        if {![string match $prefix:* $object]} { error "expected a $prefix object, not $object" }
        lappend out [string range $object [expr {[string length $prefix] + 1}] end]
    }
    return $out
}
proc connect_bd_net {args} {
    if {[llength $args] < 2} { error "connect_bd_net: needs two pins or more" }
    record net {*}[strip pin $args]
}
proc connect_bd_intf_net {a b} { record intf {*}[strip intf [list $a $b]] }

proc apply_bd_automation {args} {
    record automation [option $args -rule] [lindex $args end] [option $args -config]
}

proc get_bd_addr_spaces {path} { return space:[pin_object get_bd_addr_spaces $path] }
proc get_bd_addr_segs {path} { return seg:[pin_object get_bd_addr_segs $path] }
proc assign_bd_address {args} {
    set space [strip space [list [option $args -target_address_space]]]
    set segment [strip seg [list [lindex [lsearch -all -inline -not -glob $args -*] end]]]
    record addr $space $segment [option $args -offset] [option $args -range]
}

proc validate_bd_design {args} { record step validate_bd_design }
proc save_bd_design {args} { record step save_bd_design }
proc get_files {name} {
    return $::project_dir/$::project.srcs/sources_1/bd/[file rootname $name]/$name
}
proc generate_target {args} { record step generate_target }
proc make_wrapper {args} { record step make_wrapper }
proc get_runs {name} { return run:$name }
proc launch_runs {args} {
    set run [lindex $args 0]
    set to [option $args -to_step]
    record step launch_runs $run $to
    if {$to eq "write_bitstream"} {
        # What Vivado leaves behind: the bitstream and the hardware handoff.
        set impl $::project_dir/$::project.runs/$run
        set handoff $::project_dir/$::project.gen/sources_1/bd/$::project/hw_handoff
        file mkdir $impl $handoff
        close [open $impl/${::project}_wrapper.bit w]
        close [open $handoff/$::project.hwh w]
    }
}
proc wait_on_run {args} { record step wait_on_run }
proc open_run {args} { record step open_run }
proc get_timing_paths {args} { return path:worst }
proc report_utilization {args} { close [open [option $args -file] w] }
proc report_timing_summary {args} { close [open [option $args -file] w] }
