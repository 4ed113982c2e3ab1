#!/usr/bin/env python3
"""deploy.py -- the install and deployment files agree with the gateway.

Issue 14 item 8.  Checks, against TS_SOURCE_ROOT and TS_BUILD_ROOT:

* the systemd unit the build generates: Type=notify, ExecStartPre runs
  -n, ExecReload sends SIGHUP to $MAINPID, TimeoutStopSec exceeds the
  drain timeout, hardening options present, and `systemd-analyze verify`
  prints nothing (it exits 0 even on a bad directive: a broken copy of the
  unit must make it print, or the check proves nothing);
* the man page: `groff -man -ww -z` and `man --warnings -l` print nothing
  (a broken copy must make groff complain), the sections a man page needs
  are there, and every option of --help and every signal the server
  handles is documented;
* `meson install --destdir` puts the binary, the man page, the example
  configuration under sysconfdir/tracestitch/ and the unit in place;
* docker/kubernetes.yaml: server.workers equals the CPU request, the grace
  period exceeds the preStop pause plus the drain timeout, a
  PodDisruptionBudget and a HorizontalPodAutoscaler select the Deployment;
* docker/compose.yaml: stop_grace_period exceeds the drain timeout.

The drain timeout is the default of server.drain_timeout in src/core/config.c.
Exits 77 (skipped) only when a tool is missing, naming it.
"""
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.environ["TS_SOURCE_ROOT"]
BUILD = os.environ["TS_BUILD_ROOT"]
failures = []
checked = 0


def check(cond, msg):
    global checked
    checked += 1
    if not cond:
        failures.append(msg)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def drain_timeout():
    m = re.search(r'"server\.drain_timeout",[^}]*?\.def = "(\d+)s"',
                  read(os.path.join(ROOT, "src/core/config.c")), re.S)
    check(m is not None,
          "no default for server.drain_timeout in src/core/config.c")
    return int(m.group(1)) if m else 30


def seconds(v):
    """'45', 45, '40s', '1m30s' -> seconds."""
    if isinstance(v, (int, float)):
        return float(v)
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+)(ms|s|m|h)?", str(v)):
        n, unit = int(m.group(1)), m.group(2) or "s"
        total += n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
        pos = m.end()
    check(pos == len(str(v)), "cannot read duration %r" % (v,))
    return total


def need(tool):
    path = shutil.which(tool)
    if path is None:
        print("SKIP: %s not installed" % tool)
        sys.exit(77)
    return path


def unit_directives(text):
    d = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        k, v = line.split("=", 1)
        d.setdefault(k, []).append(v)
    return d


def check_unit(drain):
    unit_path = os.path.join(BUILD, "tracestitch.service")
    text = read(unit_path)
    d = unit_directives(text)
    check(d.get("Type") == ["notify"], "unit: Type=%s" % d.get("Type"))
    check(any(re.search(r"/tracestitch -n -c ", v)
              for v in d.get("ExecStartPre", [])),
          "unit: ExecStartPre does not run tracestitch -n")
    check("/bin/kill -HUP $MAINPID" in d.get("ExecReload", []),
          "unit: no ExecReload=/bin/kill -HUP $MAINPID")
    stop = seconds(d.get("TimeoutStopSec", ["0"])[-1])
    check(stop > drain, "unit: TimeoutStopSec %gs <= drain %ds" % (stop,
                                                                     drain))
    for k in ("NoNewPrivileges", "ProtectSystem", "ProtectHome",
              "PrivateTmp", "PrivateDevices", "RestrictAddressFamilies",
              "SystemCallFilter", "CapabilityBoundingSet",
              "MemoryDenyWriteExecute", "DynamicUser"):
        check(k in d, "unit: no %s= (hardening)" % k)

    analyze = need("systemd-analyze")
    binary = os.path.join(BUILD, "src", "tracestitch")
    m = re.search(r"^ExecStart=(\S+)", text, re.M)
    with tempfile.TemporaryDirectory() as tmp:
        def verify(body):
            p = os.path.join(tmp, "tracestitch.service")
            with open(p, "w", encoding="utf-8") as f:
                # verify wants the executables to exist: the build's.
                f.write(body.replace(m.group(1), binary))
            r = subprocess.run([analyze, "verify", "--man=no", p],
                               capture_output=True, text=True, timeout=60)
            return r.returncode, (r.stdout + r.stderr).strip()

        rc, out = verify(text)
        check(rc == 0 and out == "",
              "systemd-analyze verify: exit %d:\n%s" % (rc, out))
        rc, out = verify(text.replace("Type=notify", "Type=bogus"))
        check(out != "", "systemd-analyze verify did not notice Type=bogus")


def check_man():
    man = os.path.join(BUILD, "tracestitch.8")
    text = read(man)
    groff = need("groff")
    r = subprocess.run([groff, "-man", "-ww", "-z", man],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and r.stderr == "",
          "groff -ww: %s" % r.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        bad = os.path.join(tmp, "bad.8")
        with open(bad, "w", encoding="utf-8") as f:
            f.write(text + ".XX unknown macro\n\\f(Zz\n")
        r = subprocess.run([groff, "-man", "-ww", "-z", bad],
                           capture_output=True, text=True, timeout=60)
        check(r.stderr != "", "groff -ww did not notice a bad macro")
    mancmd = need("man")
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0")
    r = subprocess.run([mancmd, "--warnings", "-l", man], env=env,
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and r.stderr == "",
          "man --warnings: %s" % r.stderr)
    for sec in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS",
                "ENVIRONMENT", "FILES", "EXIT STATUS"):
        check(re.search(r"^\.SH %s$" % sec, text, re.M) is not None,
              "man page: no %s section" % sec)
    r = subprocess.run([os.path.join(BUILD, "src", "tracestitch"),
                        "--help"], capture_output=True, text=True,
                       timeout=60)
    opts = re.findall(r"^\s+(-\w), (--[\w-]+)", r.stdout, re.M)
    check(len(opts) >= 5, "--help lists %d options" % len(opts))
    for short, long_ in opts:
        for o in (short, long_):
            check(o.replace("-", "\\-") in text,
                  "man page does not document %s" % o)
    server = read(os.path.join(ROOT, "src/worker/server.c"))
    sigs = set(re.findall(r"evsignal_new\(srv\.base, (SIG\w+)", server))
    check({"SIGHUP", "SIGUSR1", "SIGTERM", "SIGINT"} <= sigs,
          "server.c handles %s" % sorted(sigs))
    for s in sigs:
        check(s in text, "man page does not document %s" % s)


def check_install():
    meson = need("meson")
    with tempfile.TemporaryDirectory() as dest:
        r = subprocess.run([meson, "install", "-C", BUILD, "--no-rebuild",
                            "--quiet", "--destdir", dest],
                           capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, "meson install: %s%s" % (r.stdout,
                                                           r.stderr))
        found = {}
        for d, _, files in os.walk(dest):
            for f in files:
                found[os.path.relpath(os.path.join(d, f), dest)] = True
        want = [r"bin/tracestitch$", r"man8/tracestitch\.8$",
                r"tracestitch/tracestitch\.yaml$",
                r"lib/systemd/system/tracestitch\.service$"]
        for w in want:
            check(any(re.search(w, f) for f in found),
                  "meson install: no %s in %s" % (w, sorted(found)))


def cpu_cores(v):
    v = str(v)
    return int(v[:-1]) / 1000.0 if v.endswith("m") else float(v)


def check_kubernetes(drain):
    docs = [d for d in yaml.safe_load_all(
        read(os.path.join(ROOT, "docker/kubernetes.yaml"))) if d]
    kinds = {d["kind"]: d for d in docs}
    for k in ("ConfigMap", "Deployment", "PodDisruptionBudget",
              "HorizontalPodAutoscaler"):
        check(k in kinds, "kubernetes.yaml: no %s" % k)
    if failures:
        return
    cfg = yaml.safe_load(kinds["ConfigMap"]["data"]["tracestitch.yaml"])
    dep = kinds["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    cpu = cpu_cores(c["resources"]["requests"]["cpu"])
    workers = cfg["server"]["workers"]
    check(workers == math.ceil(cpu) and cpu == math.ceil(cpu),
          "kubernetes.yaml: %s workers for a CPU request of %g" % (workers,
                                                                   cpu))
    pre = 0
    cmd = c.get("lifecycle", {}).get("preStop", {}).get(
        "exec", {}).get("command", [])
    if len(cmd) == 2 and cmd[0] == "sleep":
        pre = seconds(cmd[1])
    grace = pod["terminationGracePeriodSeconds"]
    check(grace > pre + drain, "kubernetes.yaml: grace %ss <= preStop %gs "
          "+ drain %ds" % (grace, pre, drain))
    labels = dep["spec"]["selector"]["matchLabels"]
    pdb = kinds["PodDisruptionBudget"]
    check(pdb["spec"]["selector"]["matchLabels"] == labels,
          "PodDisruptionBudget does not select the Deployment's pods")
    hpa = kinds["HorizontalPodAutoscaler"]
    ref = hpa["spec"]["scaleTargetRef"]
    check(hpa["apiVersion"] == "autoscaling/v2" and
          ref["kind"] == "Deployment" and
          ref["name"] == dep["metadata"]["name"],
          "HorizontalPodAutoscaler does not scale the Deployment")
    check(hpa["spec"]["minReplicas"] > pdb["spec"].get("minAvailable", 0),
          "HPA minReplicas %s leaves the PodDisruptionBudget no room" %
          hpa["spec"]["minReplicas"])
    check(any(m.get("resource", {}).get("name") == "cpu"
              for m in hpa["spec"]["metrics"]),
          "HorizontalPodAutoscaler does not scale on CPU")


def check_compose(drain):
    doc = yaml.safe_load(read(os.path.join(ROOT, "docker/compose.yaml")))
    g = seconds(doc["services"]["tracestitch"].get("stop_grace_period",
                                                   "10s"))
    check(g > drain, "compose.yaml: stop_grace_period %gs <= drain %ds" %
          (g, drain))


def main():
    drain = drain_timeout()
    check_kubernetes(drain)
    check_compose(drain)
    check_unit(drain)
    check_man()
    check_install()
    for f in failures:
        print("FAIL: %s" % f)
    print("%d checks, %d failures" % (checked, len(failures)))
    return 1 if failures or checked < 40 else 0


if __name__ == "__main__":
    sys.exit(main())
