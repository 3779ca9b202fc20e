#!/usr/bin/env python3
# test-codegen-tool.py: peer-codegen's answers to bad input, one line naming
# the file and the line, non-zero exit, nothing written; and, as the twin,
# the good files it turns into code, which each compiler given compiles
# warning-free with nothing but -Wall -Wextra -Werror, as a user's build
# would (not with this tree's own warning flags). TAP on stdout.
#
# test-codegen-tool.py TOOL SRCDIR [--cc 'COMPILER COMMAND']... [--include DIR]
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

tool, srcdir = sys.argv[1], sys.argv[2]
compilers = []
includes = []
rest = sys.argv[3:]
while rest:
    opt, value, rest = rest[0], rest[1], rest[2:]
    if opt == '--cc':
        # Each compiler once, whatever it is called (cc is often gcc).
        found = shutil.which(shlex.split(value)[0])
        if found and os.path.realpath(found) not in [os.path.realpath(shutil.which(c[0])) for c in compilers]:
            compilers.append(shlex.split(value))
    elif opt == '--include':
        includes.append(value)
    else:
        sys.exit('test-codegen-tool.py: unknown option %s' % opt)
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
    'signal-direction.xml': (4, "bad direction 'in'"),
    'bad-c-name.xml': (4, "'run-now' is not a C identifier"),
    'object-clash.xml': (4, "name clash: property org.example.Clash1.ObjectName and property "
                            "org.example.Clash1.Name (%s:3) are both 'ex_clash1_set_object_name' in C"
                         % os.path.join(bad, 'object-clash.xml')),
    'length-clash.xml': (5, "both 'arg_data_len' in C"),
    'fd-list-clash.xml': (5, "both 'out_fd_list' in C"),
}
GOOD = [os.path.join(srcdir, 'codegen', f) for f in ('org.libpeer.test.Types1.xml', 'org.libpeer.test.Names1.xml')] + \
       [os.path.join(srcdir, '..', 'protocol', f) for f in
        ('org.libpeer.Bench1.xml', 'org.libpeer.Helper1.xml', 'org.libpeer.Job1.xml')]
# What the twins of the bad files generate (with --c-namespace Ex).
EXPECTED = {
    'org.libpeer.test.Names1.xml': ['ex_renamed_call_run_now_sync', 'ex_renamed_subscribe_altered',
                                    'ex_renamed_emit_object_altered', 'ex_renamed_set_object_name',
                                    'ex_renamed_set_object_count', 'ex_renamed_set_object_object_count',
                                    'ex_renamed_set_object_title', 'gsize arg_data_len',
                                    'guint32 arg_length', 'const char *arg_fd_list', 'GUnixFDList **out_fd_list'],
    'org.libpeer.Job1.xml': ['ex_job1_set_object_state', 'ex_job1_set_object_progress',
                             'ex_job1_emit_object_progress', 'ex_job1_emit_object_finished'],
    'org.libpeer.Helper1.xml': ['gboolean (*write_label) (PeerInterface *iface'],
}
try:
    gio_cflags = shlex.split(subprocess.run(['pkg-config', '--cflags', 'gio-2.0', 'gio-unix-2.0'],
                                            capture_output=True, text=True, check=True).stdout)
except (OSError, subprocess.CalledProcessError):
    gio_cflags = None

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
    ok(r.returncode != 0 and r.stderr == os.path.join(bad, 'missing.xml') + ': error: cannot read it: '
       'No such file or directory\n', 'a missing file is named, in one line (%r)' % r.stderr)
    r = subprocess.run([sys.executable, tool, '--output-header', h, '--output-source', c, bad],
                       capture_output=True, text=True)
    ok(r.returncode != 0 and r.stderr.startswith(bad + ': error: cannot read it: ') and
       len(r.stderr.splitlines()) == 1, 'a directory is named, in one line (%r)' % r.stderr)
    for path in GOOD:
        name = os.path.basename(path)
        r = subprocess.run([sys.executable, tool, '--c-namespace', 'Ex', '--interface-prefix', 'org.libpeer.',
                            '--output-header', h, '--output-source', c, path],
                           capture_output=True, text=True)
        ok(r.returncode == 0 and r.stderr == '', '%s: generated (%r)' % (name, r.stderr))
        ok(os.path.getsize(h) > 0 and os.path.getsize(c) > 0, '%s: both files written' % name)
        with open(h) as f:
            header = f.read()
        for word in EXPECTED.get(name, []):
            ok(word in header, '%s: declares %s' % (name, word))
        for cc in compilers:
            if gio_cflags is None:
                print('ok %d - %s: compiled by %s # SKIP no pkg-config for gio' % (n + 1, name, cc[0]))
                n += 1
                continue
            r = subprocess.run(cc + ['-c', '-o', os.devnull, '-Wall', '-Wextra', '-Werror'] +
                               ['-I' + d for d in includes + [out]] + gio_cflags + [c],
                               capture_output=True, text=True)
            ok(r.returncode == 0 and r.stderr == '',
               '%s: compiled by %s with -Wall -Wextra -Werror (%r)' % (name, ' '.join(cc), r.stderr[-2000:]))
        os.unlink(h)
        os.unlink(c)

print('1..%d' % n)
sys.exit(1 if failed else 0)
