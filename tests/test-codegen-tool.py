#!/usr/bin/env python3
# test-codegen-tool.py: peer-codegen's answers to bad input, one line naming
# the file and the line, non-zero exit, nothing written; and, as the twin,
# the good files it turns into code. TAP on stdout.
import os
import subprocess
import sys
import tempfile

tool, srcdir = sys.argv[1], sys.argv[2]
bad = os.path.join(srcdir, 'codegen', 'bad')

# file: (line, a word the message must hold)
BAD = {
    'invalid-xml.xml': (4, 'invalid XML'),
    'unknown-type.xml': (7, "unknown type 'm'"),
    'bad-dict.xml': (3, 'basic type'),
    'two-types.xml': (4, 'single complete type'),
    'name-clash.xml': (4, 'name clash'),
    'arg-clash.xml': (5, 'name clash'),
    'interface-clash.xml': (5, 'name clash'),
    'bad-direction.xml': (4, 'direction'),
    'bad-timeout.xml': (3, 'org.libpeer.Timeout'),
}
GOOD = [os.path.join(srcdir, 'codegen', 'org.libpeer.test.Types1.xml')] + \
       [os.path.join(srcdir, '..', 'protocol', f) for f in
        ('org.libpeer.Bench1.xml', 'org.libpeer.Helper1.xml', 'org.libpeer.Job1.xml')]

n = 0
failed = 0


def ok(cond, what):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print('%s %d - %s' % ('ok' if cond else 'not ok', n, what))


with tempfile.TemporaryDirectory() as out:
    h, c = os.path.join(out, 'out.h'), os.path.join(out, 'out.c')
    for name, (line, word) in sorted(BAD.items()):
        path = os.path.join(bad, name)
        r = subprocess.run([sys.executable, tool, '--c-namespace', 'Ex', '--interface-prefix', 'org.example.',
                            '--output-header', h, '--output-source', c, path],
                           capture_output=True, text=True)
        lines = r.stderr.splitlines()
        ok(r.returncode != 0, '%s: non-zero exit' % name)
        ok(len(lines) == 1, '%s: one line (%r)' % (name, r.stderr))
        ok(lines[:1] and lines[0].startswith('%s:%d: error: ' % (path, line)),
           '%s: names the file and line %d (%r)' % (name, line, r.stderr))
        ok(lines[:1] and word in lines[0], '%s: says %r' % (name, word))
        ok(not os.path.exists(h) and not os.path.exists(c), '%s: writes nothing' % name)
        for f in (h, c):
            if os.path.exists(f):
                os.unlink(f)
    r = subprocess.run([sys.executable, tool, '--output-header', h, '--output-source', c,
                        os.path.join(bad, 'missing.xml')], capture_output=True, text=True)
    ok(r.returncode != 0 and r.stderr.startswith(os.path.join(bad, 'missing.xml') + ':'),
       'a missing file is named (%r)' % r.stderr)
    for path in GOOD:
        r = subprocess.run([sys.executable, tool, '--c-namespace', 'Ex', '--interface-prefix', 'org.libpeer.',
                            '--output-header', h, '--output-source', c, path],
                           capture_output=True, text=True)
        ok(r.returncode == 0 and r.stderr == '', '%s: generated (%r)' % (os.path.basename(path), r.stderr))
        ok(os.path.getsize(h) > 0 and os.path.getsize(c) > 0, '%s: both files written' % os.path.basename(path))
        os.unlink(h)
        os.unlink(c)

print('1..%d' % n)
sys.exit(1 if failed else 0)
