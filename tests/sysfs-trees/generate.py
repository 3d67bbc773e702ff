#!/usr/bin/env python3
"""Generates the fake sysfs/procfs trees amd-pstate-epp-8c and rk3588-3cluster in the layout of
../shared/sysfs-trees (relative symlinks where the kernel has links, one value per file, trailing
newline), from the kernel's documented layouts:
  Documentation/admin-guide/pm/cpufreq.rst   (policyN attributes, cpuN/cpufreq links, boost)
  Documentation/admin-guide/pm/amd-pstate.rst (amd_pstate/status, amd_pstate_* attributes, EPP)
  Documentation/hwmon/k10temp.rst            (Tctl/Tccd labels, no max/crit on Zen)
  arch/arm64/boot/dts/rockchip/rk3588s.dtsi  (cluster OPP tables, tsadc thermal zones and trips)
  Documentation/ABI/testing/sysfs-class-devfreq (the dmc and GPU devfreq devices)
Run it from this directory; the trees are committed, so tests never need Python."""
import json
import os
import shutil


def w(root, rel, value):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"{value}\n")


def link(root, rel, target):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


def proc_stat(ncpu, seed):
    lines = []
    tot = [0] * 10
    per = []
    for c in range(ncpu):
        f = [41000 + 97 * c + seed, 300 + c, 16000 + 13 * c, 1880000 + 1111 * c, 2100 + c, 0,
             900 + c, 0, 0, 0]
        per.append(f)
        tot = [a + b for a, b in zip(tot, f)]
    lines.append("cpu  " + " ".join(map(str, tot)))
    for c, f in enumerate(per):
        lines.append(f"cpu{c} " + " ".join(map(str, f)))
    lines += ["intr 81749263 9 0 0 0 0 0 0 0 1 0 0 0 0 0", "ctxt 152375563",
              "btime 1764060000", "processes 204877", "procs_running 2", "procs_blocked 0",
              "softirq 40235341 1 11208123 8 1250441 0 0 120019 14578322 0 13078427"]
    return "\n".join(lines)


def zone(root, n, ztype, temp, trips, hwmon=None):
    base = f"sys/devices/virtual/thermal/thermal_zone{n}"
    w(root, f"{base}/type", ztype)
    w(root, f"{base}/temp", temp)
    w(root, f"{base}/mode", "enabled")
    w(root, f"{base}/policy", "step_wise")
    w(root, f"{base}/available_policies", "step_wise power_allocator user_space")
    for k, (ttype, ttemp, hyst) in enumerate(trips):
        w(root, f"{base}/trip_point_{k}_type", ttype)
        w(root, f"{base}/trip_point_{k}_temp", ttemp)
        w(root, f"{base}/trip_point_{k}_hyst", hyst)
    link(root, f"sys/class/thermal/thermal_zone{n}", f"../../devices/virtual/thermal/thermal_zone{n}")
    if hwmon is not None:
        hn, hname = hwmon
        w(root, f"{base}/hwmon/hwmon{hn}/name", hname)
        w(root, f"{base}/hwmon/hwmon{hn}/temp1_input", temp)
        link(root, f"sys/class/hwmon/hwmon{hn}",
             f"../../devices/virtual/thermal/thermal_zone{n}/hwmon/hwmon{hn}")


def cpu_common(root, ncpu):
    cpu = "sys/devices/system/cpu"
    r = f"0-{ncpu - 1}"
    for f in ("online", "possible", "present"):
        w(root, f"{cpu}/{f}", r)
    w(root, f"{cpu}/offline", "")
    w(root, f"{cpu}/kernel_max", "8191")
    for c in range(1, ncpu):
        w(root, f"{cpu}/cpu{c}/online", "1")


def amd(root):
    ncpu = 8
    cpu = "sys/devices/system/cpu"
    cpu_common(root, ncpu)
    w(root, f"{cpu}/amd_pstate/status", "active")
    w(root, f"{cpu}/amd_pstate/prefcore", "enabled")
    w(root, f"{cpu}/cpufreq/boost", "1")
    curs = [3620000, 400000, 2871000, 1600000, 4700000, 545000, 400000, 3011000]
    for c in range(ncpu):
        p = f"{cpu}/cpufreq/policy{c}"
        vals = {
            "affected_cpus": c, "related_cpus": c,
            "cpuinfo_min_freq": 400000, "cpuinfo_max_freq": 4700000,
            "cpuinfo_transition_latency": 20000,
            "scaling_driver": "amd-pstate-epp",
            "scaling_available_governors": "performance powersave",
            "scaling_governor": "powersave",
            "scaling_min_freq": 400000, "scaling_max_freq": 4700000,
            "scaling_cur_freq": curs[c], "scaling_setspeed": "<unsupported>",
            "energy_performance_preference": "balance_performance",
            "energy_performance_available_preferences":
                "default performance balance_performance balance_power power ",
            "amd_pstate_highest_perf": 166 + (c % 4) * 20,
            "amd_pstate_max_freq": 4700000,
            "amd_pstate_lowest_nonlinear_freq": 1800000,
            "amd_pstate_hw_prefcore": "enabled",
            "amd_pstate_prefcore_ranking": 236 - 5 * c,
        }
        for k, v in vals.items():
            w(root, f"{p}/{k}", v)
        link(root, f"{cpu}/cpu{c}/cpufreq", f"../cpufreq/policy{c}")
    # AMD desktops/laptops: no CPU thermal zone, only acpitz; the CPU reads through k10temp.
    zone(root, 0, "acpitz", 41000, [("critical", 105000, 0)], hwmon=(0, "acpitz"))
    k10 = "sys/devices/pci0000:00/0000:00:18.3/hwmon/hwmon1"
    for k, v in {"name": "k10temp", "temp1_input": 52250, "temp1_label": "Tctl",
                 "temp3_input": 49750, "temp3_label": "Tccd1"}.items():
        w(root, f"{k10}/{k}", v)
    link(root, "sys/class/hwmon/hwmon1", "../../devices/pci0000:00/0000:00:18.3/hwmon/hwmon1")
    w(root, "proc/stat", proc_stat(ncpu, 11))
    return {
        "tree": "amd-pstate-epp-8c", "arch": "x86_64", "ncpus": ncpu,
        "scaling_driver": "amd-pstate-epp", "pstate": "amd", "pstate_status": "active",
        "num_policies": ncpu,
        "policies": {f"policy{c}": {"related_cpus": [c], "cpuinfo_min_khz": 400000,
                                    "cpuinfo_max_khz": 4700000, "scaling_min_khz": 400000,
                                    "scaling_max_khz": 4700000, "cur_khz": curs[c],
                                    "available_frequencies_khz": []} for c in range(ncpu)},
        "available_governors": ["performance", "powersave"], "current_governor": "powersave",
        "epp": "balance_performance",
        "epp_choices": ["default", "performance", "balance_performance", "balance_power", "power"],
        "knobs": {"cpufreq_boost_global": True, "policy_boost": False,
                  "intel_pstate_no_turbo": False, "epp": True, "scaling_setspeed": False},
        "thermal_zones": {"thermal_zone0": "acpitz"},
        "first_passive_trip_mC": None, "critical_trip_mC": 105000,
        "hwmon": {"hwmon0": "acpitz", "hwmon1": "k10temp"},
        "cpu_temp_mC": 52250, "cpu_temp_source": "hwmon1 k10temp Tctl",
        "proc_stat_cpus": ncpu,
    }


RK_LITTLE = [408000, 600000, 816000, 1008000, 1200000, 1416000, 1608000, 1800000]
RK_BIG = RK_LITTLE + [2016000, 2208000, 2400000]


def rk3588(root):
    ncpu = 8
    cpu = "sys/devices/system/cpu"
    cpu_common(root, ncpu)
    clusters = [("policy0", [0, 1, 2, 3], RK_LITTLE, 1008000),
                ("policy4", [4, 5], RK_BIG, 1800000),
                ("policy6", [6, 7], RK_BIG, 408000)]
    govs = "conservative ondemand userspace powersave performance schedutil"
    for name, cpus, freqs, cur in clusters:
        p = f"{cpu}/cpufreq/{name}"
        lst = " ".join(map(str, cpus))
        vals = {
            "affected_cpus": lst, "related_cpus": lst,
            "cpuinfo_min_freq": freqs[0], "cpuinfo_max_freq": freqs[-1],
            "cpuinfo_cur_freq": cur, "cpuinfo_transition_latency": 40000,
            "scaling_driver": "cpufreq-dt", "scaling_available_governors": govs,
            "scaling_governor": "schedutil",
            "scaling_available_frequencies": " ".join(map(str, freqs)) + " ",
            "scaling_min_freq": freqs[0], "scaling_max_freq": freqs[-1],
            "scaling_cur_freq": cur, "scaling_setspeed": "<unsupported>",
            "stats/total_trans": 4242,
            "stats/time_in_state": "\n".join(f"{f} {100 + i}" for i, f in enumerate(freqs)),
        }
        for k, v in vals.items():
            w(root, f"{p}/{k}", v)
        for c in cpus:
            link(root, f"{cpu}/cpu{c}/cpufreq", f"../cpufreq/{name}")
    # rk3588s.dtsi: soc-thermal has two passive trips and a critical one; the per-cluster zones
    # only a critical trip. Zone numbering follows the tsadc channel order.
    crit = ("critical", 115000, 0)
    zone(root, 0, "soc-thermal", 46153, [("passive", 75000, 2000), ("passive", 85000, 2000), crit],
         hwmon=(0, "soc_thermal"))
    zone(root, 1, "bigcore0-thermal", 47076, [crit], hwmon=(1, "bigcore0_thermal"))
    zone(root, 2, "bigcore1-thermal", 47999, [crit], hwmon=(2, "bigcore1_thermal"))
    zone(root, 3, "littlecore-thermal", 46153, [crit], hwmon=(3, "littlecore_thermal"))
    zone(root, 4, "center-thermal", 45230, [crit], hwmon=(4, "center_thermal"))
    zone(root, 5, "gpu-thermal", 44307, [crit], hwmon=(5, "gpu_thermal"))
    zone(root, 6, "npu-thermal", 45230, [crit], hwmon=(6, "npu_thermal"))
    # The memory controller as the Rockchip BSP kernel exposes it (rockchip_dmc.c, devfreq class,
    # Documentation/ABI/testing/sysfs-class-devfreq); the 528..2112 MHz LPDDR4x steps follow the
    # vendor rk3588 dmc OPP table (not verified against a live board). The GPU has a devfreq
    # device too, which the governor must leave alone.
    dmc = "sys/devices/platform/dmc/devfreq/dmc"
    dmc_hz = [528000000, 1068000000, 1560000000, 2112000000]
    for k, v in {"name": "dmc", "governor": "dmc_ondemand",
                 "available_governors": "dmc_ondemand userspace powersave performance "
                                        "simple_ondemand",
                 "available_frequencies": " ".join(map(str, dmc_hz)),
                 "min_freq": dmc_hz[0], "max_freq": dmc_hz[-1], "cur_freq": dmc_hz[1],
                 "target_freq": dmc_hz[1], "polling_interval": 50,
                 "userspace/set_freq": "<unsupported>"}.items():
        w(root, f"{dmc}/{k}", v)
    link(root, "sys/class/devfreq/dmc", "../../devices/platform/dmc/devfreq/dmc")
    gpu = "sys/devices/platform/fb000000.gpu/devfreq/fb000000.gpu"
    gpu_hz = [300000000, 400000000, 500000000, 600000000, 700000000, 800000000, 900000000,
              1000000000]
    for k, v in {"name": "fb000000.gpu", "governor": "simple_ondemand",
                 "available_governors": "userspace powersave performance simple_ondemand",
                 "available_frequencies": " ".join(map(str, gpu_hz)),
                 "min_freq": gpu_hz[0], "max_freq": gpu_hz[-1], "cur_freq": gpu_hz[0],
                 "target_freq": gpu_hz[0], "polling_interval": 50}.items():
        w(root, f"{gpu}/{k}", v)
    link(root, "sys/class/devfreq/fb000000.gpu",
         "../../devices/platform/fb000000.gpu/devfreq/fb000000.gpu")
    w(root, "proc/stat", proc_stat(ncpu, 5))
    pols = {}
    for name, cpus, freqs, cur in clusters:
        pols[name] = {"related_cpus": cpus, "cpuinfo_min_khz": freqs[0],
                      "cpuinfo_max_khz": freqs[-1], "scaling_min_khz": freqs[0],
                      "scaling_max_khz": freqs[-1], "cur_khz": cur,
                      "available_frequencies_khz": freqs}
    return {
        "tree": "rk3588-3cluster", "arch": "aarch64", "ncpus": ncpu,
        "scaling_driver": "cpufreq-dt", "pstate": "none", "num_policies": 3, "policies": pols,
        "available_governors": govs.split(), "current_governor": "schedutil",
        "knobs": {"cpufreq_boost_global": False, "policy_boost": False,
                  "intel_pstate_no_turbo": False, "epp": False, "scaling_setspeed": True},
        "thermal_zones": {"thermal_zone0": "soc-thermal", "thermal_zone1": "bigcore0-thermal",
                          "thermal_zone2": "bigcore1-thermal",
                          "thermal_zone3": "littlecore-thermal",
                          "thermal_zone4": "center-thermal", "thermal_zone5": "gpu-thermal",
                          "thermal_zone6": "npu-thermal"},
        "first_passive_trip_mC": 75000, "critical_trip_mC": 115000,
        "cpu_temp_mC": 47999, "cpu_temp_source": "thermal_zone2 bigcore1-thermal",
        "proc_stat_cpus": ncpu,
        "devfreq": {"dmc": {"governor": "dmc_ondemand", "available_hz": dmc_hz,
                            "min_hz": dmc_hz[0], "max_hz": dmc_hz[-1], "memory": True},
                    "fb000000.gpu": {"governor": "simple_ondemand", "memory": False}},
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for name, fn in (("amd-pstate-epp-8c", amd), ("rk3588-3cluster", rk3588)):
        root = os.path.join(here, name)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        facts = fn(root)
        with open(os.path.join(root, "expected.json"), "w") as f:
            json.dump(facts, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
