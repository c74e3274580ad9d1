import os
import sys, yaml, json
base = yaml.safe_load(open('experiments/config/small.yaml'))
name, patch = sys.argv[1], json.loads(sys.argv[2])
def merge(a, b):
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict): merge(a[k], v)
        else: a[k] = v
merge(base, patch); base['profile'] = name
yaml.safe_dump(base, open(os.path.join(os.environ.get('OUT', '/tmp/s5'), name + '.yaml'), 'w'))
