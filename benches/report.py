#!/usr/bin/env python3
"""Turns the bench results into benches/results/*.json, benches/results/chart.svg and the tables of
BENCHMARKS.md (between the `<!-- results:begin -->` and `<!-- results:end -->` markers; the prose
around them is left alone). Standard library only.

    python3 benches/report.py        # run by benches/run-all.sh after the benches
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
BENCHMARKS_MD = os.path.join(HERE, "..", "BENCHMARKS.md")

VARIANTS = ["plain", "hypertrace", "hypertrace-disabled", "otel-axum", "tower-http", "hypertrace-unsampled"]
LETTER = dict(zip(VARIANTS, "abcdef"))
LABEL = {
    "plain": "plain axum",
    "hypertrace": "#[hypertrace::handler], capture everything",
    "hypertrace-disabled": "#[hypertrace::handler], enabled: false",
    "otel-axum": "axum-tracing-opentelemetry OtelAxumLayer",
    "tower-http": "tower-http TraceLayer + tracing-opentelemetry",
    "hypertrace-unsampled": "#[hypertrace::handler], enabled, sampler always_off",
}
SHORT = {
    "plain": "(a) plain axum",
    "hypertrace": "(b) hypertrace",
    "hypertrace-disabled": "(c) hypertrace, disabled",
    "otel-axum": "(d) OtelAxumLayer",
    "tower-http": "(e) tower-http TraceLayer",
    "hypertrace-unsampled": "(f) hypertrace, unsampled",
}
COLOR = {"plain": "#7f7f7f", "hypertrace": "#1f77b4", "hypertrace-disabled": "#9ecae1",
         "otel-axum": "#ff7f0e", "tower-http": "#d62728", "hypertrace-unsampled": "#c6dbef"}


def load(name):
    p = os.path.join(RESULTS, name)
    return json.load(open(p)) if os.path.exists(p) else None


def criterion_dir(root):
    """<root>/request/<x>-<variant>/new/estimates.json -> {"variants": {...}}, or None."""
    base_dir = os.path.join(root, "request")
    if not os.path.isdir(base_dir):
        return None
    out = {"unit": "ns", "variants": {}}
    for v in VARIANTS:
        p = os.path.join(base_dir, f"{LETTER[v]}-{v}", "new", "estimates.json")
        if not os.path.exists(p):
            continue
        e = json.load(open(p))
        info_path = os.path.join(base_dir, f"{LETTER[v]}-{v}", "spans.txt")
        info = dict(re.findall(r'(\S+)=(\S+)', open(info_path).read())) if os.path.exists(info_path) else {}
        out["variants"][v] = {
            "spans_dropped": int(info.get("agent.dropped", 0)),
            "median_ns": e["median"]["point_estimate"],
            "mean_ns": e["mean"]["point_estimate"],
            "mean_ci95_ns": [e["mean"]["confidence_interval"]["lower_bound"], e["mean"]["confidence_interval"]["upper_bound"]],
        }
    base = out["variants"].get("plain")
    for r in out["variants"].values():
        if base:
            r["overhead_ns"] = r["median_ns"] - base["median_ns"]
            r["ratio_to_plain"] = r["median_ns"] / base["median_ns"]
    return out if out["variants"] else None


def collect_criterion():
    """The criterion runs (glibc malloc, and jemalloc preloaded) -> results/overhead.json."""
    glibc = criterion_dir(os.path.join(HERE, "target", "criterion"))
    if not glibc:
        return load("overhead.json")
    glibc["jemalloc"] = criterion_dir(os.path.join(HERE, "target", "criterion-jemalloc"))
    json.dump(glibc, open(os.path.join(RESULTS, "overhead.json"), "w"), indent=1)
    return glibc


def fmt(x, nd=0):
    return "–" if x is None else f"{x:,.{nd}f}"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def tables(ov, cg, tp, tpj, mem, memj, machine, pa=None, paj=None, pl=None, grpc=None):
    L = []
    if machine:
        L.append(f"Run of {machine.get('date', '?')} on {machine.get('cpu', '?')}, {machine.get('nproc', '?')} CPUs, "
                 f"{machine.get('mem', '?')}, Linux {machine.get('kernel', '?')}; {machine.get('rustc', '')}. "
                 "Load average (1 min) at the start of each phase: " +
                 ", ".join(f"{k} {v}" for k, v in machine.get("load", {}).items()) + ".")
        L.append("")
    L.append("![chart](benches/results/chart.svg)")
    L.append("")

    ovv = (ov or {}).get("variants", {})
    ovj = ((ov or {}).get("jemalloc") or {}).get("variants", {})
    cgv = (cg or {}).get("variants", {})
    tpv = (tp or {}).get("variants", {})
    tpj_doc, tpj = tpj, (tpj or {}).get("variants", {})
    pav = (pa or {}).get("variants", {})
    pajv = (paj or {}).get("variants", {})

    L.append("### Against the targets")
    L.append("")
    L.append("| target | measured | |")
    L.append("|---|---|---|")
    if "hypertrace" in pav:
        # The paired run: plain and the variant in one process, alternating blocks.
        r = pav["hypertrace"]
        s = f"×{r['ratio']:.3f} (95% CI ×{r['ratio_lo']:.3f}–×{r['ratio_hi']:.3f}), {r['diff_ns'] / 1000:+.1f} µs on {r['plain_ns'] / 1000:.1f} µs, with glibc malloc"
        checks = [r["ratio"] <= 1.15]
        if "hypertrace" in pajv:
            rj = pajv["hypertrace"]
            s += f"; ×{rj['ratio']:.3f} (×{rj['ratio_lo']:.3f}–×{rj['ratio_hi']:.3f}), {rj['diff_ns'] / 1000:+.1f} µs on {rj['plain_ns'] / 1000:.1f} µs, with jemalloc"
            checks.append(rj["ratio"] <= 1.10)
        s += " (paired in one process, table 1a)"
        v = "**met**" if all(checks) else ("**missed**" if not any(checks) else f"**met by {sum(checks)} of {len(checks)} measures**")
        L.append(f"| capture-everything in-process ≤ 1.15× plain with glibc, ≤ 1.10× with jemalloc | {s} | {v} |")
    if "hypertrace" in ovv and "hypertrace" not in pav:
        # Without a paired run, criterion's separate processes are all there is.
        o = ovv["hypertrace"]["overhead_ns"]
        s = f"{o / 1000:.2f} µs with glibc malloc"
        ok = o <= 2000
        if "hypertrace" in ovj:
            oj = ovj["hypertrace"]["overhead_ns"]
            s += f", {oj / 1000:.2f} µs with jemalloc"
        if "hypertrace" in cgv:
            s += (f"; {cgv['hypertrace']['request_path'] - cgv['plain']['request_path']:,.0f} instructions on the request path "
                  f"+ {cgv['hypertrace']['export'] - cgv['plain']['export']:,.0f} on the export thread")
        L.append(f"| capture-everything overhead ≤ 2 µs/request in-process | {s} | {verdict(ok)} |")
    if "hypertrace" in tpv:
        r = tpv["hypertrace"]["ratio_to_plain"]
        s = f"{r * 100:.1f}% with glibc malloc"
        if "hypertrace" in tpj:
            s += f", {tpj['hypertrace']['ratio_to_plain'] * 100:.1f}% with jemalloc"
        if tpv["hypertrace"].get("server_cpu_us_per_request") and tpv.get("plain", {}).get("server_cpu_us_per_request"):
            s += (f"; server CPU per request {tpv['hypertrace']['server_cpu_us_per_request']:.1f} µs vs "
                  f"{tpv['plain']['server_cpu_us_per_request']:.1f} µs for plain (glibc)")
        L.append(f"| loopback throughput ≥ 90% of plain axum | {s} | {verdict(r >= 0.9)} |")
    if all(k in ovv for k in ("hypertrace", "otel-axum", "tower-http")):
        b, d, e = (ovv[k]["overhead_ns"] for k in ("hypertrace", "otel-axum", "tower-http"))
        checks = [b < d and b < e]
        s = f"time (glibc): {b / 1000:.2f} µs vs (d) {d / 1000:.2f}, (e) {e / 1000:.2f} µs"
        if all(k in pav for k in ("hypertrace", "otel-axum", "tower-http")):
            # The paired figures replace criterion's separate processes when they are there.
            checks = []
            s = ""
            for name, src in (("glibc", pav), ("jemalloc", pajv)):
                if all(k in src for k in ("hypertrace", "otel-axum", "tower-http")):
                    b, d, e = (src[k]["ratio"] for k in ("hypertrace", "otel-axum", "tower-http"))
                    checks.append(b < d and b < e)
                    s += f"{'; ' if s else ''}time ({name}, paired): ×{b:.3f} vs (d) ×{d:.3f}, (e) ×{e:.3f}"
        elif all(k in ovj for k in ("hypertrace", "otel-axum", "tower-http")):
            bj, dj, ej = (ovj[k]["overhead_ns"] for k in ("hypertrace", "otel-axum", "tower-http"))
            checks.append(bj < dj and bj < ej)
            s += f"; time (jemalloc): {bj / 1000:.2f} vs {dj / 1000:.2f}, {ej / 1000:.2f} µs"
        if all(k in cgv for k in ("hypertrace", "otel-axum", "tower-http")):
            ib, id_, ie = (cgv[k]["overhead"] for k in ("hypertrace", "otel-axum", "tower-http"))
            checks.append(ib < id_ and ib < ie)
            s += f"; instructions: {ib:,.0f} vs {id_:,.0f}, {ie:,.0f}"
        if all(k in tpv for k in ("hypertrace", "otel-axum", "tower-http")):
            rb, rd, re_ = (tpv[k]["ratio_to_plain"] for k in ("hypertrace", "otel-axum", "tower-http"))
            checks.append(rb > rd and rb > re_)
            s += f"; loopback: {rb * 100:.0f}% vs {rd * 100:.0f}%, {re_ * 100:.0f}% of plain"
        if all(k in cgv for k in ("hypertrace", "otel-axum", "tower-http")):
            s += (f". Captured per span: {cgv['hypertrace']['span_attributes']} attributes, {cgv['hypertrace']['otlp_bytes_per_span']:,} B of OTLP "
                  f"(headers and bodies) vs {cgv['otel-axum']['span_attributes']} / {cgv['otel-axum']['otlp_bytes_per_span']:,} B and "
                  f"{cgv['tower-http']['span_attributes']} / {cgv['tower-http']['otlp_bytes_per_span']:,} B")
        v = "**met**" if all(checks) else ("**missed**" if not any(checks) else f"**met by {sum(checks)} of {len(checks)} measures**")
        L.append(f"| cheaper than (d) and (e) while capturing more | {s} | {v} |")
    gv = ((grpc or {}).get("interleaved") or {}).get("variants", {})
    if all(k in gv for k in ("a-plain", "b-hypertrace", "d-tower-http")):
        # benches/benches/grpc.rs: both ends instrumented, against tower-http's TraceLayer for gRPC.
        a, b, d = gv["a-plain"], gv["b-hypertrace"], gv["d-tower-http"]
        bw, dw = b["wall_us"] - a["wall_us"], d["wall_us"] - a["wall_us"]
        bc, dc = b["cpu_us"] - a["cpu_us"], d["cpu_us"] - a["cpu_us"]
        checks = [bw <= dw, bc <= dc]
        s = (f"per unary call, both ends, over plain tonic's {a['wall_us']:.1f} µs: wall {bw:+.1f} µs vs {dw:+.1f} µs, "
             f"CPU {bc:+.1f} µs vs {dc:+.1f} µs for tower-http's `TraceLayer` (metadata and both messages as JSON vs "
             f"method and URI; interleaved run of `benches/benches/grpc.rs`)")
        v = "**met**" if all(checks) else ("**missed**" if not any(checks) else f"**met by {sum(checks)} of {len(checks)} measures**")
        L.append(f"| gRPC layers no costlier than their peer | {s} | {v} |")
    if "hypertrace-disabled" in ovv or "hypertrace-disabled" in pav:
        checks, parts = [], []
        timed = (("time, glibc, paired", pav, "ratio"), ("time, jemalloc, paired", pajv, "ratio")) if pav else \
            (("time, glibc", ovv, "ratio_to_plain"), ("time, jemalloc", ovj, "ratio_to_plain"))
        for name, src, key in timed:
            if "hypertrace-disabled" in src:
                r = src["hypertrace-disabled"][key]
                # Within 2% either way: a run where plain came out more than 2% slower than the
                # same code plus the agent's extraction measured noise, not the agent.
                checks.append(abs(r - 1) <= 0.02)
                parts.append(f"{(r - 1) * 100:+.1f}% ({name})")
        if "hypertrace-disabled" in cgv:
            r = cgv["hypertrace-disabled"]["ratio_to_plain"]
            checks.append(abs(r - 1) <= 0.02)
            parts.append(f"{(r - 1) * 100:+.1f}% (instructions)")
        if "hypertrace-disabled" in tpv:
            r = tpv["hypertrace-disabled"]["ratio_to_plain"]
            checks.append(abs(r - 1) <= 0.02)
            parts.append(f"{(r - 1) * 100:+.1f}% (loopback requests/s)")
        v = "**met**" if all(checks) else ("**missed**" if not any(checks) else f"**met by {sum(checks)} of {len(checks)} measures**")
        L.append(f"| `enabled: false` within 2% of plain | {', '.join(parts)} | {v} |")
    if "hypertrace-unsampled" in cgv and "hypertrace-disabled" in cgv:
        checks, parts = [], []
        timed = (("time, glibc, paired", pav, "ratio"), ("time, jemalloc, paired", pajv, "ratio")) if pav else \
            (("time, glibc", ovv, "median_ns"), ("time, jemalloc", ovj, "median_ns"))
        for name, src, key in timed + (("instructions", cgv, "total"), ("loopback requests/s", tpv, "rps")):
            if "hypertrace-unsampled" in src and "hypertrace-disabled" in src:
                r = src["hypertrace-unsampled"][key] / src["hypertrace-disabled"][key]
                checks.append(abs(r - 1) <= 0.02)
                parts.append(f"{(r - 1) * 100:+.1f}% ({name})")
        v = "**met**" if all(checks) else ("**missed**" if not any(checks) else f"**met by {sum(checks)} of {len(checks)} measures**")
        L.append(f"| an unsampled request within 2% of `enabled: false` | {', '.join(parts)} | {v} |")
    if mem and "hypertrace" in mem["cases"]:
        t = mem["target_growth_kib"]
        h, p = mem["cases"]["hypertrace"], mem["cases"].get("plain", {})
        g = max(c["growth_kib"] for c in h.values())
        s = f"growth: upload {h['upload']['growth_kib']:,} KiB, download {h['download']['growth_kib']:,} KiB"
        if "upload" in p and "download" in p:
            s += (f"; above plain: upload {h['upload']['growth_kib'] - p['upload']['growth_kib']:,} KiB, "
                  f"download {h['download']['growth_kib'] - p['download']['growth_kib']:,} KiB")
            g2 = max(h[d]["growth_kib"] - p[d]["growth_kib"] for d in ("upload", "download"))
        else:
            g2 = g
        if memj and "hypertrace" in memj["cases"]:
            hj = memj["cases"]["hypertrace"]
            s += f"; with jemalloc: upload {hj['upload']['growth_kib']:,}, download {hj['download']['growth_kib']:,} KiB"
        v = verdict(g <= t) if (g <= t) == (g2 <= t) else "**met above plain; missed by the raw growth**"
        L.append(f"| RSS growth for 1 GiB transfers ≤ 2 × body_max_size_bytes + 1 MiB = {t:,} KiB | {s} | {v} |")
    L.append("")

    if pav:
        L.append("### 1a. In-process time, paired with plain axum in one process")
        L.append("")
        L.append(f"The request of table 1, in {pa['pairs']} pairs of blocks of {pa['per_block']:,} requests (after a warm-up of 200): "
                 "a block of plain axum and a block of the variant back to back, the order alternating, the variant's telemetry "
                 "set up afresh for each block. Median of each side, and the median of the per-pair differences with a "
                 "distribution-free 95% CI. Blocks milliseconds apart see the same machine; separate processes (table 1) "
                 "do not, on this VM.")
        L.append("")
        L.append("| variant | glibc: plain ns | variant ns | difference (95% CI) | × (a) | jemalloc: plain ns | variant ns | difference (95% CI) | × (a) |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for v in VARIANTS:
            if v == "plain" or (v not in pav and v not in pajv):
                continue
            cells = [f"({LETTER[v]}) {LABEL[v]}"]
            for src in (pav, pajv):
                r = src.get(v)
                if r:
                    cells += [f"{r['plain_ns']:,.0f}", f"{r['variant_ns']:,.0f}",
                              f"{r['diff_ns']:+,.0f} ({r['diff_lo_ns']:+,.0f} … {r['diff_hi_ns']:+,.0f})",
                              f"{r['ratio']:.3f}"]
                else:
                    cells += ["–"] * 4
            L.append("| " + " | ".join(cells) + " |")
        L.append("")
    if ovv:
        L.append("### 1. In-process time per request")
        L.append("")
        L.append("`POST /echo`, 1 KiB JSON body, 10 request headers, through `Router::oneshot`, whole response body read; "
                 "criterion, each variant in its own process; median (95% CI of the mean). The batch processors export "
                 "on their own thread (the machine's other core).")
        L.append("")
        L.append("| variant | glibc malloc: ns/request | × (a) | overhead | jemalloc: ns/request | × (a) | overhead |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for v in VARIANTS:
            cells = [f"({LETTER[v]}) {LABEL[v]}"]
            for src in (ovv, ovj):
                o = src.get(v)
                if o:
                    cells += [f"{o['median_ns']:,.0f} ({o['mean_ci95_ns'][0]:,.0f}–{o['mean_ci95_ns'][1]:,.0f})",
                              f"{o['ratio_to_plain']:.3f}", f"{o['overhead_ns']:+,.0f} ns"]
                else:
                    cells += ["–"] * 3
            L.append("| " + " | ".join(cells) + " |")
        L.append("")
        drops = [f"{alloc}: {src[v]['spans_dropped']:,}" for alloc, src in (("glibc", ovv), ("jemalloc", ovj))
                 for v in ("hypertrace",) if v in src and src[v].get("spans_dropped")]
        if drops:
            L.append("(b)'s export thread fell behind at times and its bounded queue dropped spans (" + ", ".join(drops) +
                     "; counted by the agent): those spans cost no export work, so (b)'s time is, if anything, flattered.")
            L.append("")
    if cgv:
        L.append("### 1b. Instructions per request (callgrind)")
        L.append("")
        L.append(f"{cg['n']:,} requests minus the empty run ({cg['warmup']} warm-up requests in both), divided by {cg['n']:,}. "
                 "\"Request path\": the thread that serves the request; \"export\": the batch processor's thread, which "
                 "encodes every span to OTLP protobuf (then discards it). Every span of the run is exported before the count ends.")
        L.append("")
        L.append("| variant | request path | export | total | × (a) | overhead | attributes/span | OTLP bytes/span |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for v in VARIANTS:
            c = cgv.get(v)
            if c:
                L.append(f"| ({LETTER[v]}) {LABEL[v]} | {c['request_path']:,.0f} | {c['export']:,.0f} | {c['total']:,.0f} | "
                         f"{c.get('ratio_to_plain', 0):.3f} | {c.get('overhead', 0):+,.0f} | {c['span_attributes'] or '–'} | "
                         f"{c['otlp_bytes_per_span'] or '–'} |")
        L.append("")

    if tpv:
        L.append("### 2. Throughput on loopback")
        L.append("")
        L.append(f"wrk, 1 thread, {tp['connections']} connections, variants alternating; pinning: {tp['pinning']}. "
                 f"Instrumented variants export OTLP/gRPC to a local receiver during the run ({tp['receiver']}).")
        L.append("")
        L.append("| variant | allocator | requests/s | × (a) | p50 ms | p99 ms | errors | server CPU | server CPU µs/request | × (a) | per round (req/s) |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for doc, alloc in ((tp, "glibc"), (tpj_doc, "jemalloc")):
            if not doc:
                continue
            pc = doc["variants"].get("plain", {}).get("server_cpu_us_per_request")
            for v in VARIANTS:
                t = doc["variants"].get(v)
                if not t:
                    continue
                per = ", ".join(f"{r['rps']:,.0f}" for r in t["runs"])
                c = t.get("server_cpu_us_per_request")
                cpu = (f"{t['server_cpu_util'] * 100:.0f}% | {c:.1f} | {c / pc:.2f}" if c and pc else "– | – | –")
                L.append(f"| ({LETTER[v]}) {LABEL[v]} | {alloc} | {t['rps']:,.0f} | {t['ratio_to_plain']:.3f} | {t['p50_ms']:.2f} | "
                         f"{t['p99_ms']:.2f} | {t['errors']} | {cpu} | {per} |")
        L.append("")
        L.append(f"{tp['rounds']} round(s) of {tp['duration_s']} s per variant with glibc"
                 + (f", {tpj_doc['rounds']} with jemalloc" if tpj_doc else "") +
                 "; requests/s and latencies are medians over rounds, \"× (a)\" the median of each round's ratio to that "
                 "round's plain run. Server CPU: all the server's threads (export included) over the run, from /proc; "
                 "below ~100% the run was limited by the client side (wrk shares CPU 1 with the receiver), and the CPU "
                 "per request is the fairer comparison.")
        L.append("")

    pls = [d for d in (pl or []) if d and d.get("variants")]
    if pls:
        L.append("### 2a. Loopback CPU time per request, by thread and component (perf)")
        L.append("")
        first = pls[0]
        L.append(f"`benches/perf-loopback.sh`: the loopback run of table 2 (OTLP/gRPC to the receiver), with `perf record` "
                 f"(software clock, {first['frequency_hz']:.0f} Hz) on the server; each sample's function sorted into a component. "
                 f"Medians over {first['rounds']} rounds of {first['duration_s']:.0f} s, variants alternating; µs of server CPU per request; "
                 "the difference is the median over rounds of each round's difference with that round's plain run. "
                 "Noisy like every wall-clock figure here (the machine's speed drifts by tens of percent between minutes), "
                 "but it shows where time goes that instruction counts do not: allocator work and the application's own "
                 "code running slower next to the agent. \"The application and its libraries\" also holds library functions the "
                 "agent calls (UTF-8 validation, `HeaderMap` lookups, drops of span data), which a profile without call "
                 "stacks cannot tell from the application's own calls.")
        L.append("")
        for doc in pls:
            pv = doc["variants"]
            names = list(pv)
            L.append(f"Servers on {doc.get('allocator', 'glibc')}:")
            L.append("")
            L.append("| thread / component | " + " | ".join(LABEL.get(n, n) for n in names)
                     + "".join(f" | difference, {SHORT.get(n, n)} − {SHORT.get(names[0], names[0])}" for n in names[1:]) + " |")
            L.append("|---|" + "---:|" * (2 * len(names) - 1))
            keys = sorted({k for n in names for k in pv[n]["us_per_request"]})
            for k in keys:
                vals = [pv[n]["us_per_request"].get(k, 0.0) for n in names]
                diffs = [pv[n]["difference_to_first"].get(k, 0.0) for n in names[1:]]
                if max(vals) < 0.05:
                    continue
                L.append(f"| {k} | " + " | ".join(f"{x:.2f}" for x in vals) + "".join(f" | {x:+.2f}" for x in diffs) + " |")
            tot = [sum(pv[n]["us_per_request"].values()) for n in names]
            L.append("| **total** | " + " | ".join(f"**{x:.2f}**" for x in tot)
                     + "".join(f" | **{pv[n]['total_difference_to_first']:+.2f}**" for n in names[1:]) + " |")
            L.append("| requests/s (median) | " + " | ".join(f"{pv[n]['rps']:,.0f}" for n in names) + " |" * len(names))
            L.append("")

    if mem:
        L.append("### 3. Memory: peak RSS while streaming")
        L.append("")
        L.append(f"{mem['mib']:,} MiB per transfer, a fresh server per case; growth = VmHWM after − VmRSS before "
                 f"(the peak is reset with `clear_refs` after a warm-up); \"above plain\" = growth − the plain handler's "
                 f"growth for the same transfer. Target for the instrumented handler: ≤ {mem['target_growth_kib']:,} KiB.")
        L.append("")
        L.append("| variant | allocator | transfer | RSS before KiB | peak KiB | growth KiB | above plain KiB | MiB/s |")
        L.append("|---|---|---|---:|---:|---:|---:|---:|")
        for doc in (mem, memj):
            if not doc:
                continue
            plain = doc["cases"].get("plain", {})
            for v, cases in doc["cases"].items():
                for d, c in cases.items():
                    above = c["growth_kib"] - plain[d]["growth_kib"] if d in plain and v != "plain" else None
                    L.append(f"| {SHORT.get(v, v)} | {doc.get('allocator', 'glibc')} | {d} | {c['rss_before_kib']:,} | {c['peak_kib']:,} | "
                             f"{c['growth_kib']:,} | {'–' if above is None else f'{above:,}'} | {c['mib_per_s']:,.0f} |")
        L.append("")
    return "\n".join(L)


def svg_chart(ov, cg, tp, tpj, path):
    """Horizontal bar panels, hand-written SVG."""
    panels = []
    ovv = (ov or {}).get("variants", {})
    ovj = ((ov or {}).get("jemalloc") or {}).get("variants", {})
    cgv = (cg or {}).get("variants", {})
    tpv = (tp or {}).get("variants", {})
    tpjv = (tpj or {}).get("variants", {})
    for title, src in (("In-process time per request, glibc malloc (µs, median)", ovv),
                       ("In-process time per request, jemalloc (µs, median)", ovj)):
        if src:
            panels.append((title, [(v, [src[v]["median_ns"] / 1000]) for v in VARIANTS if v in src], "{:.1f} µs", None))
    if cgv:
        panels.append(("Instructions per request (callgrind): request path + export thread",
                       [(v, [cgv[v]["request_path"] / 1000, cgv[v]["export"] / 1000]) for v in VARIANTS if v in cgv],
                       "{:.0f}k", ["request path", "export"]))
    for title, src in (("Loopback throughput, glibc malloc (% of plain axum)", tpv),
                       ("Loopback throughput, jemalloc (% of plain axum)", tpjv)):
        if src:
            panels.append((title, [(v, [src[v]["ratio_to_plain"] * 100]) for v in VARIANTS if v in src], "{:.0f}%", None))
    W, left, right, bar, gap, head = 760, 190, 80, 16, 5, 30
    y = 10
    parts = []
    for title, rows, f, legend in panels:
        parts.append(f'<text x="10" y="{y + 16}" font-size="14" font-weight="bold">{esc(title)}</text>')
        if legend:
            for i, name in enumerate(legend):
                lx = W - right - 200 + i * 110
                parts.append(f'<rect x="{lx}" y="{y + 26}" width="12" height="12" fill="#444" fill-opacity="{1 if i == 0 else 0.35}"/>'
                             f'<text x="{lx + 16}" y="{y + 36}" font-size="11">{esc(name)}</text>')
            y += 16
        y += head
        vmax = max(sum(vals) for _, vals in rows) or 1
        scale = (W - left - right) / vmax
        for v, vals in rows:
            parts.append(f'<text x="{left - 8}" y="{y + bar - 4}" font-size="12" text-anchor="end">{esc(SHORT[v])}</text>')
            x = left
            for i, val in enumerate(vals):
                w = max(val * scale, 0.5)
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{COLOR[v]}" fill-opacity="{1 if i == 0 else 0.35}"/>')
                x += w
            parts.append(f'<text x="{x + 6:.1f}" y="{y + bar - 4}" font-size="12">{esc(f.format(sum(vals)))}</text>')
            y += bar + gap
        y += 14
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" viewBox="0 0 {W} {y}" '
           f'font-family="Helvetica, Arial, sans-serif"><rect width="100%" height="100%" fill="white"/>' + "".join(parts) + "</svg>\n")
    open(path, "w").write(svg)


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main():
    os.makedirs(RESULTS, exist_ok=True)
    ov = collect_criterion()
    cg, tp, mem, machine = load("callgrind.json"), load("throughput.json"), load("memory.json"), load("machine.json")
    tpj = load("throughput-jemalloc.json")
    svg_chart(ov, cg, tp, tpj, os.path.join(RESULTS, "chart.svg"))
    body = tables(ov, cg, tp, tpj, mem, load("memory-jemalloc.json"), machine,
                  load("paired.json"), load("paired-jemalloc.json"),
                  [load("perf-loopback.json"), load("perf-loopback-jemalloc.json")], load("grpc.json"))
    if os.path.exists(BENCHMARKS_MD):
        md = open(BENCHMARKS_MD).read()
        b, e = "<!-- results:begin -->", "<!-- results:end -->"
        if b in md and e in md:
            md = md[: md.index(b) + len(b)] + "\n" + body + "\n" + md[md.index(e):]
            open(BENCHMARKS_MD, "w").write(md)
            print("report: BENCHMARKS.md tables updated", file=sys.stderr)
        else:
            print("report: no results markers in BENCHMARKS.md; tables printed below", file=sys.stderr)
            print(body)
    else:
        print(body)


if __name__ == "__main__":
    main()
