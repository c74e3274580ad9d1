"""Two builds of the compiled CPU scan side by side: outputs and gradients bit-identical? forward
and backward ms (best of 3 x 20 / 10 calls, 1 thread). The builds are the folders
`.venv/share/use_repro/extensions/use_repro_scan_cpu_<TAG>` (the tag is a hash of the source).

    python docs/investigations/issue15-scripts/scan_ab.py OLD_TAG NEW_TAG
"""
import importlib.util, sys, time
import torch

torch.set_num_threads(1)


def load(tag):
    name = f'use_repro_scan_cpu_{tag}'
    spec = importlib.util.spec_from_file_location(name, f'.venv/share/use_repro/extensions/{name}/{name}.so')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


old, new = load(sys.argv[1]), load(sys.argv[2])
g = torch.Generator().manual_seed(0)
for B, D, L, N in [(2, 64, 400, 16), (8, 256, 400, 16), (1, 256, 161, 16)]:
    u = torch.randn(B, D, L, generator=g); dt = torch.rand(B, D, L, generator=g) * 0.1
    A = -torch.rand(D, N, generator=g); Bt = torch.randn(B, L, N, generator=g); Ct = torch.randn(B, L, N, generator=g)
    dy = torch.randn(B, D, L, generator=g)
    same = torch.equal(old.fwd(u, dt, A, Bt, Ct), new.fwd(u, dt, A, Bt, Ct)) and all(
        torch.equal(a, b) for a, b in zip(old.bwd(u, dt, A, Bt, Ct, dy), new.bwd(u, dt, A, Bt, Ct, dy)))
    best = {}
    for _ in range(3):
        for name, m in (('old', old), ('new', new)):
            t = time.perf_counter()
            for _ in range(20):
                m.fwd(u, dt, A, Bt, Ct)
            tf = (time.perf_counter() - t) / 20
            t = time.perf_counter()
            for _ in range(10):
                m.bwd(u, dt, A, Bt, Ct, dy)
            tb = (time.perf_counter() - t) / 10
            f0, b0 = best.get(name, (1e9, 1e9))
            best[name] = (min(f0, tf), min(b0, tb))
    print((B, D, L, N), 'fwd ms old %.2f new %.2f | bwd ms old %.2f new %.2f | %s' % (
        best['old'][0] * 1e3, best['new'][0] * 1e3, best['old'][1] * 1e3, best['new'][1] * 1e3,
        'bit-identical' if same else 'DIFFERENT'))
