#!/usr/bin/env python3
"""fuzz-budget.py -- `make fuzz HOURS=N`: N CPU-hours of libFuzzer over every
harness, the new coverage merged into the committed corpus, and a report.

1. Build.  FUZZ_BUILD (default build-fuzz) is set up once with clang,
   ASan + UBSan and libFuzzer, as tests/fuzz/meson.build's comment says;
   only the fuzz_* executables are compiled (ninja names them).
2. Harnesses.  Every executable target named fuzz_<name> that meson
   reports (`meson introspect --targets`), so a harness added to
   tests/fuzz/meson.build's list later is fuzzed with no edit here.
3. Budget.  HOURS * 3600 CPU-seconds, shared equally between the harnesses
   (FUZZ_WEIGHTS="h2=3 config=2" weighs some more; FUZZ_TARGETS="h2 url"
   picks some).  CPU-seconds are measured (the user + system time of the
   fuzzer and its job processes, getrusage), not assumed from the wall
   clock: under `nice -n 19` on a busy machine a second of wall clock is
   less than a second of CPU.  Each harness runs -max_total_time = what is
   left of its share / FUZZ_JOBS; a harness that got less CPU than its
   share runs again (up to MAX_ROUNDS rounds) until the share is used up
   or FUZZ_WALL_MAX seconds of wall clock have passed (then the harnesses
   left share the time left equally).  A harness stops at its first
   finding (crash, leak, timeout, out-of-memory): that is a bug to fix.
4. Corpus.  A scratch corpus per harness, FUZZ_BUILD/fuzz/<name>/corpus,
   seeded once from tests/fuzz/corpus/<name> and kept between runs;
   tests/fuzz/crashes/<name> (reproducers of fixed bugs) is read too.
   Dictionaries: tests/fuzz/<name>.dict or fuzz_<name>.dict, else the
   shared one in DICT_SHARED.
5. Merge.  -merge=1 of the scratch corpus into tests/fuzz/corpus/<name>
   with -use_counters=0 -use_value_profile=0, so only inputs that reach a
   new edge are added (the scratch corpus keeps the rest for the next
   run); then the cap: new files over FUZZ_MAX_FILE bytes are dropped, and
   the largest new files go until the directory holds at most
   FUZZ_MAX_FILES files and FUZZ_MAX_BYTES bytes (files already committed
   are never removed).  FUZZ_MERGE=0 skips this step.
6. Report.  FUZZ_BUILD/fuzz-report.md and fuzz-report.tsv: per harness the
   CPU seconds, executions, exec/s, edges (cov) and features (ft) at the
   end, the edges of the committed corpus before and after the merge, the
   corpus sizes, peak RSS and every finding with its artifact path.

Exit status: 0 when no harness found anything, 1 on a finding, 2 on a
usage or build error.
"""
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
FUZZ_SRC = os.path.join(SRC, "tests", "fuzz")

# Harnesses that share a dictionary (the prop_* harnesses read the same
# header lines).
DICT_SHARED = {
    "prop_": "fuzz_prop_headers.dict",
}
# Flags a harness needs beyond the common ones (README: fuzz_h2's inputs
# are whole connections, longer than libFuzzer's default 4096).
TARGET_ARGS = {
    "h2": ["-max_len=16384"],
}
COMMON_ARGS = ["-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1"]
MAX_ROUNDS = 4
FINDING_PREFIXES = ("crash-", "leak-", "timeout-", "oom-")


def env_num(name, default, conv=float):
    v = os.environ.get(name, "")
    if v == "":
        return default
    try:
        return conv(v)
    except ValueError:
        sys.exit("fuzz: %s=%r is not a number" % (name, v))


def log(msg):
    print("fuzz: " + msg, flush=True)


def setup_build(build):
    """Configure FUZZ_BUILD with clang + libFuzzer + ASan/UBSan once."""
    if os.path.exists(os.path.join(build, "build.ninja")):
        return
    env = dict(os.environ, CC="clang")
    # Warnings as errors (CI) are for the gcc builds; clang's own warnings
    # must not stop a fuzzing run.
    env.pop("CI", None)
    cmd = ["meson", "setup", build, "-Dfuzzing=true",
           "-Db_sanitize=address,undefined", "-Db_lundef=false",
           "-Dc_args=-fsanitize=fuzzer-no-link"]
    log(" ".join(cmd))
    if subprocess.run(cmd, cwd=SRC, env=env).returncode != 0:
        sys.exit(2)


def find_harnesses(build):
    """{name: executable} of every fuzz_<name> executable target."""
    # Regenerate first when a meson.build changed (a harness added to the
    # list), so that the introspection data knows it.
    env = dict(os.environ)
    env.pop("CI", None)
    if subprocess.run(["ninja", "-C", build, "build.ninja"], cwd=SRC,
                      env=env, stdout=subprocess.DEVNULL).returncode != 0:
        sys.exit(2)
    out = subprocess.run(["meson", "introspect", "--targets", build],
                         cwd=SRC, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        sys.exit(2)
    found = {}
    for t in json.loads(out.stdout):
        m = re.fullmatch(r"fuzz_([a-z0-9_]+)", t["name"])
        if t["type"] == "executable" and m and t.get("filename"):
            found[m.group(1)] = t["filename"][0]
    if not found:
        sys.exit("fuzz: %s has no fuzz_* executable: not a -Dfuzzing=true "
                 "clang build (remove it and run again)" % build)
    return found


def build_harnesses(build, exes):
    rel = sorted(os.path.relpath(p, os.path.abspath(build))
                 for p in exes.values())
    env = dict(os.environ)
    env.pop("CI", None)
    log("ninja -C %s %d harnesses" % (build, len(rel)))
    if subprocess.run(["ninja", "-C", build] + rel, cwd=SRC,
                      env=env).returncode != 0:
        sys.exit(2)


def find_dict(name):
    for cand in (name + ".dict", "fuzz_" + name + ".dict"):
        p = os.path.join(FUZZ_SRC, cand)
        if os.path.isfile(p):
            return p
    for prefix, d in DICT_SHARED.items():
        if name.startswith(prefix):
            return os.path.join(FUZZ_SRC, d)
    return None


def dir_stats(d):
    """(files, bytes) of the regular files in d."""
    n = b = 0
    if os.path.isdir(d):
        for e in os.scandir(d):
            if e.is_file():
                n += 1
                b += e.stat().st_size
    return n, b


def fuzz_env():
    env = dict(os.environ)
    # UBSan only prints by default: halt so libFuzzer saves the input.
    env["UBSAN_OPTIONS"] = "halt_on_error=1:abort_on_error=1:" \
        "print_stacktrace=1"
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    sym = shutil.which("llvm-symbolizer")
    if sym:
        env["ASAN_SYMBOLIZER_PATH"] = sym
    return env


STAT_RE = re.compile(r"^#(\d+)\s+\S+\s+cov: (\d+) ft: (\d+) corp: (\d+)/",
                     re.M)


def parse_logs(paths):
    """execs, last cov, last ft, peak rss over the fuzzer logs of a round."""
    execs = cov = ft = rss = 0
    for p in paths:
        try:
            with open(p, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        m = re.findall(r"stat::number_of_executed_units:\s+(\d+)", text)
        lines = STAT_RE.findall(text)
        if m:
            execs += int(m[-1])
        elif lines:
            execs += int(lines[-1][0])	# killed before its final stats
        if lines:
            cov = max(cov, int(lines[-1][1]))
            ft = max(ft, int(lines[-1][2]))
        r = re.findall(r"stat::peak_rss_mb:\s+(\d+)", text)
        if r:
            rss = max(rss, int(r[-1]))
    return execs, cov, ft, rss


class Target:
    def __init__(self, name, exe, work, weight):
        self.name = name
        self.exe = exe
        self.work = os.path.join(work, name)
        self.corpus = os.path.join(self.work, "corpus")
        self.artifacts = os.path.join(self.work, "artifacts") + "/"
        self.committed = os.path.join(FUZZ_SRC, "corpus", name)
        self.crashes = os.path.join(FUZZ_SRC, "crashes", name)
        self.dict = find_dict(name)
        self.weight = weight
        self.budget = 0.0
        self.cpu = 0.0
        self.wall = 0.0
        self.execs = 0
        self.cov = self.ft = self.rss = 0
        self.rounds = 0
        self.findings = []
        self.committed_before = dir_stats(self.committed)
        self.committed_after = self.committed_before
        self.cov_before = self.cov_after = None
        self.merged = 0
        self.dropped = 0

    def args(self):
        a = list(COMMON_ARGS) + TARGET_ARGS.get(self.name, [])
        if self.dict:
            a.append("-dict=" + self.dict)
        a.append("-artifact_prefix=" + self.artifacts)
        return a

    def prepare(self):
        os.makedirs(self.artifacts, exist_ok=True)
        if not os.path.isdir(self.corpus):
            os.makedirs(self.corpus)
            if os.path.isdir(self.committed):
                for e in os.scandir(self.committed):
                    if e.is_file():
                        shutil.copy(e.path, self.corpus)

    def artifact_set(self):
        return {e.name for e in os.scandir(self.artifacts)
                if e.name.startswith(FINDING_PREFIXES)}


running = None


def run_logged(cmd, cwd, logpath, env):
    """Run one fuzzer process group; its CPU seconds (it and its jobs)."""
    global running
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(logpath, "w") as logf:
        running = subprocess.Popen(cmd, cwd=cwd, stdout=logf,
                                   stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
        running.wait()
        running = None
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def fuzz_round(t, secs, jobs, env, extra):
    t.rounds += 1
    rdir = os.path.join(t.work, "logs", "round%d" % t.rounds)
    if os.path.isdir(rdir):
        shutil.rmtree(rdir)
    os.makedirs(rdir)
    before = t.artifact_set()
    cmd = [t.exe] + t.args() + extra + ["-max_total_time=%d" % secs]
    if jobs > 1:
        # Each job is its own process writing fuzz-<n>.log in cwd, all
        # sharing the scratch corpus; -max_total_time applies per job.
        cmd += ["-jobs=%d" % jobs, "-workers=%d" % jobs]
    cmd += [t.corpus]
    if os.path.isdir(t.crashes):
        cmd.append(t.crashes)
    main_log = os.path.join(rdir, "fuzzer.log")
    t0 = time.monotonic()
    cpu = run_logged(cmd, rdir, main_log, env)
    t.wall += time.monotonic() - t0
    t.cpu += cpu
    logs = [main_log] if jobs == 1 else sorted(
        os.path.join(rdir, f) for f in os.listdir(rdir)
        if re.fullmatch(r"fuzz-\d+\.log", f))
    execs, cov, ft, rss = parse_logs(logs)
    t.execs += execs
    if cov:
        t.cov, t.ft = cov, ft
    t.rss = max(t.rss, rss)
    new = sorted(t.artifact_set() - before)
    for a in new:
        t.findings.append(os.path.join(t.artifacts, a))
    log("%-16s round %d: %4d s asked, %7.1f CPU-s, %9d execs, cov %d ft %d%s"
        % (t.name, t.rounds, secs, cpu, execs, cov, ft,
           ", FINDING " + " ".join(new) if new else ""))


def corpus_cov(t, env, extra):
    """Edges the committed corpus reaches (-runs=0), None on failure."""
    if not os.path.isdir(t.committed):
        return None
    out = subprocess.run([t.exe, "-runs=0", "-use_value_profile=0"] +
                         TARGET_ARGS.get(t.name, []) + extra + [t.committed],
                         cwd=t.work, capture_output=True, text=True,
                         errors="replace", env=env)
    lines = STAT_RE.findall(out.stdout + out.stderr)
    return int(lines[-1][1]) if lines else None


def merge(t, env, extra, caps):
    """-merge=1 the scratch corpus into the committed one, then the cap."""
    max_files, max_bytes, max_file = caps
    os.makedirs(t.committed, exist_ok=True)
    old = {e.name for e in os.scandir(t.committed) if e.is_file()}
    ctl = os.path.join(t.work, "merge.control")
    if os.path.exists(ctl):
        os.unlink(ctl)
    cmd = [t.exe, "-merge=1", "-use_counters=0", "-use_value_profile=0",
           "-merge_control_file=" + ctl] + TARGET_ARGS.get(t.name, []) + \
        extra + [t.committed, t.corpus]
    with open(os.path.join(t.work, "merge.log"), "w") as logf:
        rc = subprocess.run(cmd, cwd=t.work, stdout=logf,
                            stderr=subprocess.STDOUT, env=env).returncode
    if rc != 0:
        log("%s: merge failed (%d), see %s/merge.log" % (t.name, rc, t.work))
    new = [e for e in os.scandir(t.committed)
           if e.is_file() and e.name not in old]
    files, size = dir_stats(t.committed)
    # Keep the smallest: drop what is too big on its own, then the largest
    # until the directory is within the caps.
    new.sort(key=lambda e: (e.stat().st_size, e.name), reverse=True)
    keep = []
    for e in new:
        s = e.stat().st_size
        if s > max_file:
            os.unlink(e.path)
            files, size = files - 1, size - s
            t.dropped += 1
        else:
            keep.append(e)
    for e in keep:
        if files <= max_files and size <= max_bytes:
            break
        s = e.stat().st_size
        os.unlink(e.path)
        files, size = files - 1, size - s
        t.dropped += 1
    t.merged = len(new) - t.dropped
    t.committed_after = dir_stats(t.committed)


def write_report(build, targets, total_budget, jobs, started, caps):
    md = os.path.join(build, "fuzz-report.md")
    tsv = os.path.join(build, "fuzz-report.tsv")
    cols = ["target", "budget_cpu_s", "cpu_s", "wall_s", "rounds", "execs",
            "execs_per_cpu_s", "cov", "ft", "scratch_files",
            "committed_files_before", "committed_files_after",
            "committed_bytes_before", "committed_bytes_after",
            "committed_cov_before", "committed_cov_after", "merged",
            "dropped_by_cap", "peak_rss_mb", "findings", "artifacts"]
    rows = []
    for t in targets:
        rows.append([t.name, "%.0f" % t.budget, "%.1f" % t.cpu,
                     "%.0f" % t.wall, t.rounds, t.execs,
                     "%.0f" % (t.execs / t.cpu if t.cpu > 0 else 0),
                     t.cov, t.ft, dir_stats(t.corpus)[0],
                     t.committed_before[0], t.committed_after[0],
                     t.committed_before[1], t.committed_after[1],
                     "" if t.cov_before is None else t.cov_before,
                     "" if t.cov_after is None else t.cov_after,
                     t.merged, t.dropped, t.rss, len(t.findings),
                     " ".join(t.findings)])
    with open(tsv, "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    cpu = sum(t.cpu for t in targets)
    execs = sum(t.execs for t in targets)
    nfind = sum(len(t.findings) for t in targets)
    with open(md, "w") as f:
        f.write("# Fuzzing report\n\n")
        f.write("Started %s UTC, %.0f s of wall clock; budget %.0f CPU-s "
                "(%.3f CPU-hours), FUZZ_JOBS=%d; build %s (clang, ASan + "
                "UBSan, libFuzzer).\n\n" % (
                    time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
                    time.time() - started, total_budget,
                    total_budget / 3600, jobs, os.path.abspath(build)))
        f.write("Measured: **%.0f CPU-s (%.3f CPU-hours)**, %d executions, "
                "%d finding(s).\n\n" % (cpu, cpu / 3600, execs, nfind))
        f.write("| target | budget s | CPU s | execs | exec/s | cov | ft | "
                "committed files | committed bytes | committed cov | "
                "merged (dropped) | peak RSS MB | findings |\n")
        f.write("|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---:"
                "|---|\n")
        for t in targets:
            f.write("| %s | %.0f | %.0f | %d | %.0f | %d | %d | %d → %d | "
                    "%d → %d | %s → %s | %d (%d) | %d | %s |\n" % (
                        t.name, t.budget, t.cpu, t.execs,
                        t.execs / t.cpu if t.cpu > 0 else 0, t.cov, t.ft,
                        t.committed_before[0], t.committed_after[0],
                        t.committed_before[1], t.committed_after[1],
                        t.cov_before if t.cov_before is not None else "-",
                        t.cov_after if t.cov_after is not None else "-",
                        t.merged, t.dropped, t.rss,
                        "<br>".join(t.findings) if t.findings else "none"))
        f.write("\nexec/s is per CPU-second.  cov and ft: libFuzzer's edges "
                "and features at the end of the harness's last round.  "
                "committed cov: edges the committed corpus reaches "
                "(-runs=0) before and after the merge.  Merge cap: at most "
                "%d files and %d bytes per directory, no new file over %d "
                "bytes.\n" % caps)
    log("report: %s, %s" % (md, tsv))
    log("%.0f CPU-s (%.3f CPU-hours), %d execs, %d finding(s)"
        % (cpu, cpu / 3600, execs, nfind))


def main():
    build = os.environ.get("FUZZ_BUILD") or "build-fuzz"
    if not os.path.isabs(build):
        build = os.path.join(SRC, build)
    hours = env_num("HOURS", None)
    if hours is None or hours <= 0:
        sys.exit("fuzz: HOURS=N (CPU-hours, e.g. HOURS=0.01) is required")
    jobs = env_num("FUZZ_JOBS", 1, int)
    if jobs < 1:
        sys.exit("fuzz: FUZZ_JOBS must be >= 1")
    wall_max = env_num("FUZZ_WALL_MAX", 0)
    caps = (env_num("FUZZ_MAX_FILES", 400, int),
            env_num("FUZZ_MAX_BYTES", 1 << 20, int),
            env_num("FUZZ_MAX_FILE", 16384, int))
    extra = os.environ.get("FUZZ_ARGS", "").split()
    do_merge = os.environ.get("FUZZ_MERGE", "1") != "0"

    setup_build(build)
    exes = find_harnesses(build)
    pick = os.environ.get("FUZZ_TARGETS", "").replace(",", " ").split()
    for p in pick:
        if p not in exes:
            sys.exit("fuzz: FUZZ_TARGETS names %s; harnesses: %s"
                     % (p, " ".join(sorted(exes))))
    names = sorted(pick or exes)
    weights = {n: 1.0 for n in names}
    for w in os.environ.get("FUZZ_WEIGHTS", "").replace(",", " ").split():
        n, _, v = w.partition("=")
        if n not in weights:
            sys.exit("fuzz: FUZZ_WEIGHTS names %s, not fuzzed" % n)
        try:
            weights[n] = float(v)
        except ValueError:
            sys.exit("fuzz: FUZZ_WEIGHTS %s: not name=number" % w)
    build_harnesses(build, {n: exes[n] for n in names})

    work = os.path.join(build, "fuzz")
    targets = [Target(n, exes[n], work, weights[n]) for n in names]
    total = hours * 3600.0
    wsum = sum(t.weight for t in targets)
    for t in targets:
        t.budget = total * t.weight / wsum
        t.prepare()
    env = fuzz_env()
    started = time.time()
    deadline = time.monotonic() + wall_max if wall_max > 0 else None
    log("%d harnesses (%s), %.0f CPU-s, FUZZ_JOBS=%d%s" % (
        len(targets), " ".join(names), total, jobs,
        ", wall clock at most %.0f s" % wall_max if deadline else ""))

    def stop(signum, frame):
        if running is not None:
            os.killpg(running.pid, signal.SIGTERM)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)

    try:
        for _ in range(MAX_ROUNDS):
            todo = [t for t in targets
                    if not t.findings and t.budget - t.cpu >= 1.0]
            if not todo:
                break
            for i, t in enumerate(todo):
                secs = (t.budget - t.cpu) / jobs
                if deadline is not None:
                    left = deadline - time.monotonic()
                    secs = min(secs, left / (len(todo) - i))
                if secs < 1.0:
                    continue
                fuzz_round(t, int(secs + 0.5), jobs, env, extra)
            if deadline is not None and time.monotonic() >= deadline - 1:
                break
    except KeyboardInterrupt:
        log("interrupted: merging and reporting what ran")
        if running is not None:
            os.killpg(running.pid, signal.SIGKILL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    if do_merge:
        for t in targets:
            if t.rounds == 0:
                continue
            t.cov_before = corpus_cov(t, env, extra)
            merge(t, env, extra, caps)
            t.cov_after = corpus_cov(t, env, extra)
            log("%-16s merged %d new input(s) (%d dropped by the cap), "
                "committed corpus %d -> %d files, edges %s -> %s" % (
                    t.name, t.merged, t.dropped, t.committed_before[0],
                    t.committed_after[0], t.cov_before, t.cov_after))
    write_report(build, targets, total, jobs, started, caps)
    return 1 if any(t.findings for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
