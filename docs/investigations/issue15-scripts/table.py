import csv, glob, os, collections
for d in sorted(glob.glob(os.path.join(os.environ.get('OUT', '/tmp/s5'), 'runs/*/curves.csv'))):
    rows = collections.defaultdict(dict)
    for r in csv.DictReader(open(d)): rows[int(r['step'])][r['metric']] = float(r['value'])
    s = sorted(rows)
    print(os.path.basename(os.path.dirname(d)).ljust(12), ' | '.join(f"{k}: {rows[k].get('DistillMOS',0):.3f}/{rows[k].get('PESQ',0):.3f}/{rows[k].get('magnitude',0):.3f}" for k in s if k))
