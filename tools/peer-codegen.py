#!/usr/bin/env python3
# peer-codegen: typed libpeer stubs and skeletons from D-Bus introspection XML.
#
# Reads one or more introspection files and writes a .h/.c pair:
#   - client stubs per method (<ns>_<iface>_call_<method>_sync, and the
#     asynchronous pair), typed property getters and setters, and typed
#     signal subscriptions, all on PeerClient's public API;
#   - a server skeleton per interface: a table of typed handlers, an export
#     function, typed complete_<method> replies, typed emit_<signal> and
#     set_<property>.
#
# Arguments made only of fixed-size basic types, strings and byte arrays are
# serialised by the generated code itself, straight into one buffer in
# GVariant's normal form, and replies of that shape are read in place: no
# GVariant tree is built either way. Containers travel as GVariants.
#
# Errors in the input are reported as one line, "file:line: error: ...",
# with exit status 1. Only the standard library is used.
import argparse
import os
import re
import sys
import xml.parsers.expat

VERSION = '1'

# --- errors -----------------------------------------------------------------


class InputError(Exception):
    def __init__(self, filename, line, message):
        super().__init__(message)
        self.filename = filename
        self.line = line
        self.message = message


# --- introspection XML, with line numbers -----------------------------------
#
# xml.etree drops line numbers; expat keeps them, and the error messages
# need them.


class Element:
    def __init__(self, tag, attrs, line):
        self.tag = tag
        self.attrs = attrs
        self.line = line
        self.children = []


def parse_xml(filename):
    with open(filename, 'rb') as f:
        data = f.read()
    root = Element(None, {}, 1)
    stack = [root]
    parser = xml.parsers.expat.ParserCreate()

    def start(tag, attrs):
        el = Element(tag, attrs, parser.CurrentLineNumber)
        stack[-1].children.append(el)
        stack.append(el)

    def end(tag):
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as e:
        raise InputError(filename, e.lineno, 'invalid XML: ' + xml.parsers.expat.ErrorString(e.code))
    nodes = [c for c in root.children if c.tag == 'node']
    if not nodes:
        raise InputError(filename, 1, 'no <node> element')
    return nodes[0]


# --- D-Bus types ------------------------------------------------------------

FIXED = {
    # char: (C type, size and alignment, GVariant accessor suffix)
    'y': ('guint8', 1, 'byte'),
    'b': ('gboolean', 1, 'boolean'),
    'n': ('gint16', 2, 'int16'),
    'q': ('guint16', 2, 'uint16'),
    'i': ('gint32', 4, 'int32'),
    'u': ('guint32', 4, 'uint32'),
    'h': ('gint32', 4, 'handle'),
    'x': ('gint64', 8, 'int64'),
    't': ('guint64', 8, 'uint64'),
    'd': ('gdouble', 8, 'double'),
}
STRINGS = 'sog'
BASIC = set(FIXED) | set(STRINGS)


def parse_one_type(sig, i, filename, line, depth=0):
    """Returns the index just past the complete type starting at sig[i]."""
    if depth > 64:
        raise InputError(filename, line, "type '%s' nests too deeply" % sig)
    if i >= len(sig):
        raise InputError(filename, line, "incomplete type '%s'" % sig)
    c = sig[i]
    if c in BASIC or c == 'v':
        return i + 1
    if c == 'a':
        if i + 1 < len(sig) and sig[i + 1] == '{':
            if i + 2 >= len(sig) or sig[i + 2] not in BASIC:
                raise InputError(filename, line, "a dict's key must be a basic type in '%s'" % sig)
            j = parse_one_type(sig, i + 3, filename, line, depth + 1)
            if j >= len(sig) or sig[j] != '}':
                raise InputError(filename, line, "unterminated dict entry in '%s'" % sig)
            return j + 1
        return parse_one_type(sig, i + 1, filename, line, depth + 1)
    if c == '(':
        j = i + 1
        if j < len(sig) and sig[j] == ')':
            raise InputError(filename, line, "empty struct in '%s'" % sig)
        while j < len(sig) and sig[j] != ')':
            j = parse_one_type(sig, j, filename, line, depth + 1)
        if j >= len(sig):
            raise InputError(filename, line, "unterminated struct in '%s'" % sig)
        return j + 1
    raise InputError(filename, line, "unknown type '%s' in '%s'" % (c, sig))


def check_single_type(sig, filename, line):
    if not sig:
        raise InputError(filename, line, 'missing type')
    end = parse_one_type(sig, 0, filename, line)
    if end != len(sig):
        raise InputError(filename, line, "'%s' is not a single complete type" % sig)


# --- names ------------------------------------------------------------------

C_KEYWORDS = set('''auto break case char const continue default do double else enum extern float
for goto if inline int long register restrict return short signed sizeof static struct switch
typedef union unsigned void volatile while _Bool _Complex _Imaginary'''.split())


def snake(name):
    """CamelCase to snake_case: OpenFile -> open_file, GetURLPath -> get_url_path."""
    out = ''
    for i, c in enumerate(name):
        if c.isupper() and i > 0:
            prev = name[i - 1]
            nxt = name[i + 1] if i + 1 < len(name) else ''
            if prev.islower() or prev.isdigit() or (prev.isupper() and nxt.islower()):
                out += '_'
        out += c.lower()
    return re.sub('_+', '_', out.replace('.', '_'))


def camel(name):
    return ''.join(p[:1].upper() + p[1:] for p in re.split(r'[._]', name) if p)


def annotations(el):
    return {a.attrs.get('name'): a.attrs.get('value', '') for a in el.children if a.tag == 'annotation'}


def is_true(value):
    return value is not None and value.lower() in ('true', '1', 'yes')


# --- the model --------------------------------------------------------------


class Arg:
    def __init__(self, name, sig, force_gvariant, line):
        self.name = name
        self.sig = sig
        self.line = line
        if sig in FIXED:
            self.kind = 'fixed'
        elif sig in STRINGS:
            self.kind = 'string'
        elif sig == 'ay' and not force_gvariant:
            self.kind = 'bytes'
        else:
            self.kind = 'variant'
        self.c = 'arg_' + name


class Args:
    """The arguments of one direction: a method's in or out, a signal's."""

    def __init__(self, args):
        self.args = args
        self.sig = '(' + ''.join(a.sig for a in args) + ')'
        # Serialised by hand when no argument is a container.
        self.fast = all(a.kind != 'variant' for a in args)
        # With an `h` inside a container, every handle indexes a list the
        # caller gives; otherwise each top-level `h` is an fd.
        self.handle_mode = any(a.kind == 'variant' and 'h' in a.sig for a in args)
        self.fd_args = [a for a in args if a.sig == 'h'] if not self.handle_mode else []


class Method:
    pass


class Signal:
    pass


class Property:
    pass


class Interface:
    pass


def parse_args(el, filename, direction_default, want_direction, what, directions=('in', 'out')):
    args = []
    names = {}
    for i, a in enumerate(c for c in el.children if c.tag == 'arg'):
        direction = a.attrs.get('direction', direction_default)
        if direction not in directions:
            raise InputError(filename, a.line, "bad direction '%s' for an argument of %s (%s)"
                             % (direction, what, ' or '.join(directions)))
        if direction != want_direction:
            continue
        sig = a.attrs.get('type')
        if sig is None:
            raise InputError(filename, a.line, 'an <arg> without a type')
        check_single_type(sig, filename, a.line)
        name = a.attrs.get('name') or ('arg%d' % i)
        if not re.match(r'^[A-Za-z_][A-Za-z0-9_]*$', name):
            raise InputError(filename, a.line, "argument name '%s' is not a C identifier" % name)
        name = snake(name)
        ann = annotations(a)
        arg = Arg(name, sig, is_true(ann.get('org.gtk.GDBus.C.ForceGVariant')), a.line)
        # An `ay` brings a second C name: its length.
        stems = [(name, None)] + ([(name + '_len', 'the length of %s' % name)] if arg.kind == 'bytes' else [])
        for stem, role in stems:
            if stem in names:
                line, other_role = names[stem]
                if role is None and other_role is None:
                    raise InputError(filename, a.line, "name clash: two %s arguments of %s are called '%s' (line %d)"
                                     % (want_direction, what, name, line))
                raise InputError(filename, a.line, "name clash: %s and %s (line %d) of %s are both 'arg_%s' in C"
                                 % (role or 'argument ' + name, other_role or 'argument ' + stem, line, what, stem))
            names[stem] = (a.line, role)
        args.append(arg)
    result = Args(args)
    # Handles in a container come with the list of fds they index, which
    # the stub hands back as out_fd_list.
    if want_direction == 'out' and result.handle_mode and 'fd_list' in names:
        raise InputError(filename, names['fd_list'][0], "name clash: argument fd_list and the fds the handles of "
                         "%s index are both 'out_fd_list' in C" % what)
    return result


MEMBER_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


def c_name(ann, el, filename):
    """The org.gtk.GDBus.C.Name annotation of @el, or None; it goes into C
    identifiers as it is, so it must be one."""
    name = ann.get('org.gtk.GDBus.C.Name')
    if name is None:
        return None
    if not MEMBER_RE.match(name):
        line = next((a.line for a in el.children
                     if a.tag == 'annotation' and a.attrs.get('name') == 'org.gtk.GDBus.C.Name'), el.line)
        raise InputError(filename, line, "org.gtk.GDBus.C.Name '%s' is not a C identifier" % name)
    return name


def member_name(el, filename, what):
    name = el.attrs.get('name')
    if not name or not MEMBER_RE.match(name) or len(name) > 255:
        raise InputError(filename, el.line, "bad %s name '%s'" % (what, name or ''))
    return name


def parse_interface(el, filename, opts):
    iface = Interface()
    iface.name = el.attrs.get('name', '')
    iface.line = el.line
    iface.filename = filename
    if not re.match(r'^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$', iface.name) or len(iface.name) > 255:
        raise InputError(filename, el.line, "bad interface name '%s'" % iface.name)
    ann = annotations(el)
    short = iface.name
    if opts.interface_prefix and short.startswith(opts.interface_prefix):
        short = short[len(opts.interface_prefix):]
    cname = c_name(ann, el, filename) or camel(short)
    ns = opts.c_namespace
    iface.camel = ns + cname
    iface.lower = (snake(ns) + '_' if ns else '') + snake(cname)
    iface.upper = iface.lower.upper()
    iface.el = el
    iface.methods = []
    iface.signals = []
    iface.properties = []
    seen = {}
    for c in el.children:
        if c.tag == 'method':
            m = Method()
            m.name = member_name(c, filename, 'method')
            m.line = c.line
            a = annotations(c)
            m.lower = snake(c_name(a, c, filename) or m.name)
            m.deprecated = is_true(a.get('org.freedesktop.DBus.Deprecated'))
            m.thread_safe = is_true(a.get('org.libpeer.ThreadSafe'))
            # How long the stubs wait: milliseconds, or "none" for calls that
            # may take as long as they take; the default is libpeer's (25 s).
            timeout = a.get('org.libpeer.Timeout')
            if timeout is None:
                m.timeout = '-1'
            elif timeout == 'none':
                m.timeout = 'G_MAXINT'
            elif timeout.isdigit() and 0 < int(timeout) < 2 ** 31 - 1:
                m.timeout = str(int(timeout))
            else:
                raise InputError(filename, c.line, "bad org.libpeer.Timeout '%s' on %s: milliseconds or 'none'"
                                 % (timeout, m.name))
            what = '%s.%s' % (iface.name, m.name)
            m.ins = parse_args(c, filename, 'in', 'in', 'method ' + what)
            m.outs = parse_args(c, filename, 'in', 'out', 'method ' + what)
            key = ('method', m.lower)
            if key in seen:
                raise InputError(filename, c.line, "name clash: method %s and the one at line %d are both '%s' in C"
                                 % (m.name, seen[key], m.lower))
            seen[key] = c.line
            iface.methods.append(m)
        elif c.tag == 'signal':
            s = Signal()
            s.name = member_name(c, filename, 'signal')
            s.line = c.line
            a = annotations(c)
            s.lower = snake(c_name(a, c, filename) or s.name)
            s.camel = camel(c_name(a, c, filename) or s.name)
            s.deprecated = is_true(a.get('org.freedesktop.DBus.Deprecated'))
            # A signal's arguments go out: an 'in' one would be served (it is
            # in the XML) but left out of the C, so it is refused.
            s.args = parse_args(c, filename, 'out', 'out', 'signal %s.%s' % (iface.name, s.name), ('out',))
            key = ('signal', s.lower)
            if key in seen:
                raise InputError(filename, c.line, "name clash: signal %s and the one at line %d are both '%s' in C"
                                 % (s.name, seen[key], s.lower))
            seen[key] = c.line
            iface.signals.append(s)
        elif c.tag == 'property':
            p = Property()
            p.name = member_name(c, filename, 'property')
            p.line = c.line
            a = annotations(c)
            p.lower = snake(c_name(a, c, filename) or p.name)
            p.sig = c.attrs.get('type')
            if p.sig is None:
                raise InputError(filename, c.line, 'a <property> without a type')
            check_single_type(p.sig, filename, c.line)
            p.access = c.attrs.get('access', '')
            if p.access not in ('read', 'write', 'readwrite'):
                raise InputError(filename, c.line, "bad access '%s' for property %s" % (p.access, p.name))
            p.arg = Arg('value', p.sig, is_true(a.get('org.gtk.GDBus.C.ForceGVariant')), c.line)
            p.deprecated = is_true(a.get('org.freedesktop.DBus.Deprecated'))
            key = ('property', p.lower)
            if key in seen:
                raise InputError(filename, c.line, "name clash: property %s and the one at line %d are both '%s' in C"
                                 % (p.name, seen[key], p.lower))
            seen[key] = c.line
            iface.properties.append(p)
    return iface


# --- C generation helpers ---------------------------------------------------


def c_string(s):
    out = '"'
    for ch in s:
        if ch in '\\"':
            out += '\\' + ch
        elif ch == '\n':
            out += '\\n"\n  "'
        else:
            out += ch
    return out + '"'


def xml_escape(s):
    return s.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;')


def interface_xml(el):
    """The interface again, without comments: what the skeleton serves."""
    def emit(e, indent):
        attrs = ''.join(' %s="%s"' % (k, xml_escape(v)) for k, v in e.attrs.items())
        kids = [c for c in e.children if c.tag in ('method', 'signal', 'property', 'arg', 'annotation')]
        if not kids:
            return '%s<%s%s/>\n' % (indent, e.tag, attrs)
        s = '%s<%s%s>\n' % (indent, e.tag, attrs)
        for c in kids:
            s += emit(c, indent + ' ')
        return s + '%s</%s>\n' % (indent, e.tag)
    return '<node>\n' + emit(el, ' ') + '</node>\n'


def in_params(args, fd_as_int=True):
    """C parameters of the arguments given by the caller (stub, complete, emit)."""
    ps = []
    for a in args.args:
        if a.kind == 'fixed':
            if a.sig == 'h' and not args.handle_mode and fd_as_int:
                ps.append('int %s' % a.c)
            else:
                ps.append('%s %s' % (FIXED[a.sig][0], a.c))
        elif a.kind == 'string':
            ps.append('const char *%s' % a.c)
        elif a.kind == 'bytes':
            ps.append('const guint8 *%s' % a.c)
            ps.append('gsize %s_len' % a.c)
        else:
            ps.append('GVariant *%s' % a.c)
    if args.handle_mode and fd_as_int:
        ps.append('GUnixFDList *fd_list')
    return ps


def out_params(args):
    """C parameters the client stub fills in."""
    ps = []
    for a in args.args:
        o = 'out_' + a.name
        if a.kind == 'fixed':
            if a.sig == 'h' and not args.handle_mode:
                ps.append('int *%s' % o)
            else:
                ps.append('%s *%s' % (FIXED[a.sig][0], o))
        elif a.kind == 'string':
            ps.append('char **%s' % o)
        elif a.kind == 'bytes':
            ps.append('GBytes **%s' % o)
        else:
            ps.append('GVariant **%s' % o)
    if args.handle_mode:
        ps.append('GUnixFDList **out_fd_list')
    return ps


def view_params(args, handle_fd):
    """C parameters of values as the receiver sees them, borrowed."""
    ps = []
    for a in args.args:
        if a.kind == 'fixed':
            if a.sig == 'h' and handle_fd and not args.handle_mode:
                ps.append('int %s' % a.c)
            else:
                ps.append('%s %s' % (FIXED[a.sig][0], a.c))
        elif a.kind == 'string':
            ps.append('const char *%s' % a.c)
        elif a.kind == 'bytes':
            ps.append('const guint8 *%s' % a.c)
            ps.append('gsize %s_len' % a.c)
        else:
            ps.append('GVariant *%s' % a.c)
    return ps


def value_params(a):
    """C parameters of one property value as a write hook sees it, borrowed."""
    if a.kind == 'fixed':
        return ['%s value' % FIXED[a.sig][0]]
    if a.kind == 'string':
        return ['const char *value']
    if a.kind == 'bytes':
        return ['const guint8 *value', 'gsize value_len']
    return ['GVariant *value']


def doc_in(args, where):
    lines = []
    for a in args.args:
        if a.kind == 'fixed' and a.sig == 'h' and not args.handle_mode:
            lines.append(' * @%s: an fd; %s keeps its own and a duplicate is sent' % (a.c, where))
        elif a.kind == 'fixed':
            lines.append(" * @%s: `%s`%s" % (a.c, a.sig, ' (an index into @fd_list)' if a.sig == 'h' else ''))
        elif a.kind == 'string':
            lines.append(' * @%s: (transfer none): `%s`, valid UTF-8%s' % (
                a.c, a.sig, {'o': ', an object path', 'g': ', a signature'}.get(a.sig, '')))
        elif a.kind == 'bytes':
            lines.append(' * @%s: (array length=%s_len) (transfer none) (nullable): `ay`, read only during the call'
                         % (a.c, a.c))
            lines.append(' * @%s_len: its length' % a.c)
        else:
            lines.append(' * @%s: (transfer none): a `%s` (a floating reference is sunk)' % (a.c, a.sig))
    if args.handle_mode:
        lines.append(' * @fd_list: (nullable) (transfer none): the fds the `h` values index; %s keeps them' % where)
    return lines


def doc_out(args):
    lines = []
    for a in args.args:
        o = 'out_' + a.name
        if a.kind == 'fixed' and a.sig == 'h' and not args.handle_mode:
            lines.append(' * @%s: (out) (optional) (transfer full): a new fd, which the caller closes' % o)
        elif a.kind == 'fixed':
            lines.append(' * @%s: (out) (optional): `%s`' % (o, a.sig))
        elif a.kind == 'string':
            lines.append(' * @%s: (out) (optional) (transfer full): `%s`, freed with g_free()' % (o, a.sig))
        elif a.kind == 'bytes':
            lines.append(' * @%s: (out) (optional) (transfer full): the bytes, read in place in the reply' % o)
        else:
            lines.append(' * @%s: (out) (optional) (transfer full): a `%s`' % (o, a.sig))
    if args.handle_mode:
        lines.append(' * @out_fd_list: (out) (optional) (transfer full) (nullable): fds the `h` values index')
    return lines


def doc_view(args, owner):
    lines = []
    for a in args.args:
        if a.kind == 'fixed' and a.sig == 'h' and owner == 'call' and not args.handle_mode:
            lines.append(' * @%s: an fd the call owns (and closes when it is freed); dup() it to keep it' % a.c)
        elif a.kind == 'fixed':
            lines.append(' * @%s: `%s`' % (a.c, a.sig))
        elif a.kind == 'string':
            lines.append(' * @%s: (transfer none): `%s`, valid while the %s lives' % (a.c, a.sig, owner))
        elif a.kind == 'bytes':
            lines.append(' * @%s: (transfer none) (array length=%s_len): `ay`, valid while the %s lives'
                         % (a.c, a.c, owner))
            lines.append(' * @%s_len: its length' % a.c)
        else:
            lines.append(' * @%s: (transfer none): a `%s`, valid while the %s runs' % (a.c, a.sig, owner))
    return lines


def join_params(ps, indent):
    return (',\n' + ' ' * indent).join(ps)


def proto(ret, name, ps):
    head = '%s\n%s (' % (ret, name)
    return head + join_params(ps, len(name) + 2) + ')'


# --- the generator ----------------------------------------------------------


class Gen:
    def __init__(self, ifaces, opts):
        self.ifaces = ifaces
        self.opts = opts
        self.h = []
        self.c = []
        self.p = opts.symbol_prefix

    def H(self, s=''):
        self.h.append(s)

    def C(self, s=''):
        self.c.append(s)

    # The serialiser and the reader, shared by every method of the file.
    def runtime(self):
        p = self.p
        self.C('''/* GVariant's serialisation, as GLib writes it (normal form): members at
 * their alignment, zero padding, and at the end of a tuple the end offset
 * of each variable-size member but the last, last one first, each as wide
 * as the tuple's size requires. Fixed values are in host order, offsets
 * little-endian. */
typedef struct {
  guint8 align;       /* 1, 2, 4 or 8 */
  guint8 fixed_size;  /* 0: variable size */
} %(p)sMember;

static gsize
%(p)soffset_size (gsize size)
{
  if (size > G_MAXUINT32)
    return 8;
  if (size > G_MAXUINT16)
    return 4;
  if (size > G_MAXUINT8)
    return 2;
  return size > 0 ? 1 : 0;
}

/* The size of a tuple whose members end at @body, with @n_offsets framing
 * offsets; the width of each goes in @offset_size. */
static gsize
%(p)stuple_size (gsize  body,
%(s)s       gsize  n_offsets,
%(s)s       gsize *offset_size)
{
  gsize size;

  if (body + n_offsets <= G_MAXUINT8)
    size = body + n_offsets;
  else if (body + 2 * n_offsets <= G_MAXUINT16)
    size = body + 2 * n_offsets;
  else if (body + 4 * n_offsets <= G_MAXUINT32)
    size = body + 4 * n_offsets;
  else
    size = body + 8 * n_offsets;
  *offset_size = %(p)soffset_size (size);
  return size;
}

static void
%(p)swrite_offset (guint8 *data,
%(s)s        gsize   size,
%(s)s        gsize   offset_size,
%(s)s        gsize   index,
%(s)s        gsize   value)
{
  guint8 *at = data + size - (index + 1) * offset_size;

  for (gsize i = 0; i < offset_size; i++)
    at[i] = (guint8) (value >> (8 * i));
}

/* Where each member of a tuple of @size bytes lies. Data that came from a
 * peer is not trusted: FALSE when an offset points outside the tuple or
 * backwards, or a fixed-size tuple has the wrong size. */
static gboolean
%(p)stuple_split (const guint8     *data,
%(s)s       gsize             size,
%(s)s       const %(p)sMember *members,
%(s)s       gsize             n,
%(s)s       gsize            *start,
%(s)s       gsize            *end)
{
  gsize offset_size = %(p)soffset_size (size);
  gsize n_offsets = 0, used = 0, pos = 0, limit, max_align = 1;
  gboolean fixed = TRUE;

  for (gsize i = 0; i < n; i++)
    {
      if (members[i].fixed_size == 0)
        {
          fixed = FALSE;
          if (i + 1 < n)
            n_offsets++;
        }
      max_align = MAX (max_align, members[i].align);
    }
  if (n_offsets * offset_size > size)
    return FALSE;
  limit = size - n_offsets * offset_size;
  for (gsize i = 0; i < n; i++)
    {
      gsize e;

      pos = (pos + members[i].align - 1) & ~(gsize) (members[i].align - 1);
      if (members[i].fixed_size != 0)
        e = pos + members[i].fixed_size;
      else if (i + 1 == n)
        e = limit;
      else
        {
          const guint8 *at = data + size - (++used) * offset_size;

          e = 0;
          for (gsize k = 0; k < offset_size; k++)
            e |= (gsize) at[k] << (8 * k);
        }
      if (e < pos || e > limit)
        return FALSE;
      start[i] = pos;
      end[i] = e;
      pos = e;
    }
  if (fixed)
    return size == ((pos + max_align - 1) & ~(gsize) (max_align - 1));
  return TRUE;
}

/* A string member: NUL-terminated, no NUL inside, valid UTF-8, and an
 * object path or a signature when its type says so. */
static gboolean
%(p)sstring_is_valid (const guint8 *data,
%(s)s           gsize         len,
%(s)s           char          type)
{
  if (len == 0 || data[len - 1] != '\\0' || !g_utf8_validate_len ((const char *) data, len - 1, NULL))
    return FALSE;
  if (type == 'o')
    return g_variant_is_object_path ((const char *) data);
  if (type == 'g')
    return g_variant_is_signature ((const char *) data);
  return TRUE;
}

static const guint8 *
%(p)sdata_of (GVariant *value)
{
  const guint8 *data = g_variant_get_data (value);

  /* Empty values may have no data at all. */
  return data != NULL ? data : (const guint8 *) "";
}

static void
%(p)sset_invalid (GError    **error,
%(s)s       const char *what)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%%s is not valid GVariant data", what);
}

/* GDBus's parser leaves an empty array where an element has no children
 * of a kind, and GDBus writes such an element as <arg ...>\\n</arg>;
 * gdbus-codegen's data has NULL there, written <arg .../>. With the empty
 * arrays made NULL, the interface introspects as it would from
 * gdbus-codegen's code. */
static void
%(p)sclear_if_empty (gpointer *location)
{
  gpointer *array = *location;

  if (array != NULL && array[0] == NULL)
    {
      g_free (array);
      *location = NULL;
    }
}

static void
%(p)sclear_annotations (GDBusAnnotationInfo ***location)
{
  for (guint i = 0; *location != NULL && (*location)[i] != NULL; i++)
    %(p)sclear_annotations (&(*location)[i]->annotations);
  %(p)sclear_if_empty ((gpointer *) location);
}

static void
%(p)sclear_args (GDBusArgInfo ***location)
{
  for (guint i = 0; *location != NULL && (*location)[i] != NULL; i++)
    %(p)sclear_annotations (&(*location)[i]->annotations);
  %(p)sclear_if_empty ((gpointer *) location);
}

static PeerInterface *
%(p)sinterface_new_for_xml (const char *xml,
%(s)s                const char *interface_name,
%(s)s                GError    **error)
{
  g_autoptr(GDBusNodeInfo) node = g_dbus_node_info_new_for_xml (xml, error);
  GDBusInterfaceInfo *info;

  if (node == NULL)
    return NULL;
  info = g_dbus_node_info_lookup_interface (node, interface_name);
  if (info == NULL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "Introspection XML has no interface %%s", interface_name);
      return NULL;
    }
  /* Ours alone until peer_interface_new() shares it. */
  %(p)sclear_annotations (&info->annotations);
  for (guint i = 0; info->methods != NULL && info->methods[i] != NULL; i++)
    {
      %(p)sclear_args (&info->methods[i]->in_args);
      %(p)sclear_args (&info->methods[i]->out_args);
      %(p)sclear_annotations (&info->methods[i]->annotations);
    }
  for (guint i = 0; info->signals != NULL && info->signals[i] != NULL; i++)
    {
      %(p)sclear_args (&info->signals[i]->args);
      %(p)sclear_annotations (&info->signals[i]->annotations);
    }
  for (guint i = 0; info->properties != NULL && info->properties[i] != NULL; i++)
    %(p)sclear_annotations (&info->properties[i]->annotations);
  return peer_interface_new (info);
}

/* Closes, on a failed reply, the fds already taken out of it. */
static void
%(p)sclose_fds (int   *fds,
%(s)s     gsize  n)
{
  for (gsize i = 0; i < n; i++)
    if (fds[i] >= 0)
      close (fds[i]);
}
''' % {'p': p, 's': ' ' * len(p)})

    # --- building a tuple from C values ---

    def emit_codec(self, build, read, args, what):
        """The builder and reader of one tuple, with the serializer and
        data reader that fast args' builder and reader are made of."""
        lone_bytes = len(args.args) == 1 and args.args[0].kind == 'bytes'
        if args.fast and args.args and not lone_bytes:
            self.emit_serializer(build + '_data', args)
        self.emit_builder(build, args, what)
        if args.fast and args.args:
            self.emit_data_reader(read + '_data', args, what)
        self.emit_reader(read, args, what)

    def emit_builder(self, name, args, what):
        """static GVariant *name (values..., gboolean borrow, GVariant *keep):
        the tuple of @args as a new floating GVariant. With @borrow, a lone
        `ay` is wrapped without a copy (the caller keeps it alive for the
        duration of a synchronous call); with @keep, it is wrapped holding a
        reference on @keep, which owns its bytes."""
        p = self.p
        ps = view_params(args, False) + ['gboolean borrow', 'GVariant *keep']
        self.C('G_GNUC_UNUSED static GVariant *')
        self.C('%s (%s)' % (name, join_params(ps, len(name) + 2)))
        self.C('{')
        sig = args.sig
        if not args.args:
            self.C('  (void) borrow;')
            self.C('  (void) keep;')
            self.C('  return NULL;')
            self.C('}')
            self.C()
            return
        if not args.fast:
            self.C('  GVariant *members[%d];' % len(args.args))
            self.C()
            for i, a in enumerate(args.args):
                if a.kind == 'fixed':
                    self.C('  members[%d] = g_variant_new_%s (%s);' % (i, FIXED[a.sig][2], a.c))
                elif a.kind == 'string':
                    fn = {'s': 'string', 'o': 'object_path', 'g': 'signature'}[a.sig]
                    self.C('  members[%d] = g_variant_new_%s (%s);' % (i, fn, a.c))
                elif a.kind == 'bytes':
                    self.C('  members[%d] = g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, %s, %s_len, 1);'
                           % (i, a.c, a.c))
                else:
                    self.C('  members[%d] = %s;' % (i, a.c))
            self.C('  (void) borrow;')
            self.C('  (void) keep;')
            self.C('  return g_variant_new_tuple (members, %d);' % len(args.args))
            self.C('}')
            self.C()
            return
        if len(args.args) == 1 and args.args[0].kind == 'bytes':
            # A tuple's last member has no framing offset: (ay) is its ay.
            a = args.args[0]
            self.C('  g_return_val_if_fail (%s != NULL || %s_len == 0, NULL);' % (a.c, a.c))
            self.C('  if (keep != NULL)')
            self.C('    return g_variant_new_from_data (PEER_CODEGEN_TYPE ("(ay)"), %s, %s_len, TRUE,' % (a.c, a.c))
            self.C('                                    (GDestroyNotify) g_variant_unref, g_variant_ref (keep));')
            self.C('  if (borrow)')
            self.C('    return g_variant_new_from_data (PEER_CODEGEN_TYPE ("(ay)"), %s, %s_len, TRUE, NULL, NULL);'
                   % (a.c, a.c))
            self.C('  {')
            self.C('    guint8 *copy = g_memdup2 (%s, %s_len);' % (a.c, a.c))
            self.C()
            self.C('    return g_variant_new_from_data (PEER_CODEGEN_TYPE ("(ay)"), copy, %s_len, TRUE, g_free, copy);' % a.c)
            self.C('  }')
            self.C('}')
            self.C()
            return
        # The serialization itself, for the builder here and for the
        # synchronous stub, which hands the bytes on as they are.
        self.C('  gsize size;')
        self.C('  guint8 *data = %s_data (%s);' % (name, ', '.join(self.view_values(args) + ['&size'])))
        self.C()
        self.C('  (void) borrow;')
        self.C('  (void) keep;')
        self.C('  if (data == NULL)')
        self.C('    return NULL;')
        self.C('  return g_variant_new_from_data (PEER_CODEGEN_TYPE (%s), data, size, TRUE, g_free, data);'
               % c_string(sig))
        self.C('}')
        self.C()

    def emit_serializer(self, name, args):
        """static guint8 *name (values..., gsize *out_size): the tuple of
        @args serialized in normal form, newly allocated (g_free()); NULL
        after a critical when a value is invalid. For fast args of more
        than a lone `ay`."""
        p = self.p
        ps = view_params(args, False) + ['gsize *out_size']
        self.C('G_GNUC_UNUSED static guint8 *')
        self.C('%s (%s)' % (name, join_params(ps, len(name) + 2)))
        self.C('{')
        n = len(args.args)
        var_nonlast = [i for i, a in enumerate(args.args) if a.kind != 'fixed' and i + 1 < n]
        self.C('  gsize at[%d], len[%d], pos = 0, size, offset_size;' % (n, n))
        self.C('  guint8 *data;')
        self.C()
        for a in args.args:
            if a.kind == 'string':
                check = {'s': 'g_utf8_validate (%s, -1, NULL)' % a.c,
                         'o': 'g_variant_is_object_path (%s)' % a.c,
                         'g': 'g_variant_is_signature (%s)' % a.c}[a.sig]
                self.C('  g_return_val_if_fail (%s != NULL && %s, NULL);' % (a.c, check))
            elif a.kind == 'bytes':
                self.C('  g_return_val_if_fail (%s != NULL || %s_len == 0, NULL);' % (a.c, a.c))
        for i, a in enumerate(args.args):
            if a.kind == 'fixed':
                size = FIXED[a.sig][1]
                if size > 1:
                    self.C('  pos = (pos + %d) & ~(gsize) %d;' % (size - 1, size - 1))
                self.C('  at[%d] = pos;' % i)
                self.C('  len[%d] = %d;' % (i, size))
            elif a.kind == 'string':
                self.C('  at[%d] = pos;' % i)
                self.C('  len[%d] = strlen (%s) + 1;' % (i, a.c))
            else:
                self.C('  at[%d] = pos;' % i)
                self.C('  len[%d] = %s_len;' % (i, a.c))
            self.C('  pos += len[%d];' % i)
        if all(a.kind == 'fixed' for a in args.args):
            align = max(FIXED[a.sig][1] for a in args.args)
            self.C('  size = (pos + %d) & ~(gsize) %d;' % (align - 1, align - 1))
            self.C('  offset_size = 0;')
        else:
            self.C('  size = %stuple_size (pos, %d, &offset_size);' % (p, len(var_nonlast)))
        self.C('  data = g_malloc0 (size);')
        for i, a in enumerate(args.args):
            if a.kind == 'fixed':
                if a.sig == 'b':
                    self.C('  data[at[%d]] = %s ? 1 : 0;' % (i, a.c))
                elif a.sig == 'y':
                    self.C('  data[at[%d]] = %s;' % (i, a.c))
                else:
                    self.C('  memcpy (data + at[%d], &%s, %d);' % (i, a.c, FIXED[a.sig][1]))
            else:
                self.C('  if (len[%d] > 0)' % i)
                self.C('    memcpy (data + at[%d], %s, len[%d]);' % (i, a.c, i))
        for k, i in enumerate(var_nonlast):
            self.C('  %swrite_offset (data, size, offset_size, %d, at[%d] + len[%d]);' % (p, k, i, i))
        self.C('  (void) offset_size;')
        self.C('  *out_size = size;')
        self.C('  return data;')
        self.C('}')
        self.C()

    # --- reading a tuple into borrowed C values ---

    def emit_reader(self, name, args, what):
        """static gboolean name (GVariant *tuple, borrowed outs..., GError **):
        strings and bytes point into @tuple's data, containers are new
        references. The tuple's type was checked by the caller."""
        p = self.p
        ps = ['GVariant *tuple']
        for a in args.args:
            if a.kind == 'fixed':
                ps.append('%s *%s' % (FIXED[a.sig][0], a.c))
            elif a.kind == 'string':
                ps.append('const char **%s' % a.c)
            elif a.kind == 'bytes':
                ps.append('const guint8 **%s' % a.c)
                ps.append('gsize *%s_len' % a.c)
            else:
                ps.append('GVariant **%s' % a.c)
        ps.append('GError **error')
        if not args.args:
            return
        self.C('G_GNUC_UNUSED static gboolean')
        self.C('%s (%s)' % (name, join_params(ps, len(name) + 2)))
        self.C('{')
        n = len(args.args)
        if not args.fast:
            for i, a in enumerate(args.args):
                self.C('  {')
                self.C('    GVariant *member = g_variant_get_child_value (tuple, %d);' % i)
                self.C()
                if a.kind == 'fixed':
                    self.C('    *%s = g_variant_get_%s (member);' % (a.c, FIXED[a.sig][2]))
                    self.C('    g_variant_unref (member);')
                elif a.kind == 'string':
                    # The member's data is the tuple's: valid while it is.
                    self.C('    *%s = g_variant_get_string (member, NULL);' % a.c)
                    self.C('    g_variant_unref (member);')
                elif a.kind == 'bytes':
                    self.C('    *%s = g_variant_get_fixed_array (member, %s_len, 1);' % (a.c, a.c))
                    self.C('    g_variant_unref (member);')
                else:
                    self.C('    *%s = member;' % a.c)
                self.C('  }')
            self.C('  (void) error;')
            self.C('  return TRUE;')
            self.C('}')
            self.C()
            return
        if n == 0:
            self.C('  (void) tuple;')
            self.C('  (void) error;')
            self.C('  return TRUE;')
            self.C('}')
            self.C()
            return
        if n == 1 and args.args[0].kind == 'bytes':
            # A lone variable-size member has no framing offset: the tuple is it.
            a = args.args[0]
            self.C('  (void) error;')
            self.C('  *%s = %sdata_of (tuple);' % (a.c, p))
            self.C('  *%s_len = g_variant_get_size (tuple);' % a.c)
            self.C('  return TRUE;')
            self.C('}')
            self.C()
            return
        names = []
        for a in args.args:
            names.append(a.c)
            if a.kind == 'bytes':
                names.append(a.c + '_len')
        self.C('  return %s_data (%s);' % (name, ', '.join(['%sdata_of (tuple), g_variant_get_size (tuple)' % p]
                                                          + names + ['error'])))
        self.C('}')
        self.C()

    def emit_data_reader(self, name, args, what):
        """static gboolean name (const guint8 *data, gsize size, borrowed
        outs..., GError **): emit_reader()'s reading of fast args, from a
        serialization of their tuple in normal form, which strings and
        bytes point into."""
        p = self.p
        ps = ['const guint8 *data', 'gsize size']
        for a in args.args:
            if a.kind == 'fixed':
                ps.append('%s *%s' % (FIXED[a.sig][0], a.c))
            elif a.kind == 'string':
                ps.append('const char **%s' % a.c)
            else:
                ps.append('const guint8 **%s' % a.c)
                ps.append('gsize *%s_len' % a.c)
        ps.append('GError **error')
        self.C('G_GNUC_UNUSED static gboolean')
        self.C('%s (%s)' % (name, join_params(ps, len(name) + 2)))
        self.C('{')
        n = len(args.args)
        if n == 1 and args.args[0].kind == 'bytes':
            a = args.args[0]
            self.C('  (void) error;')
            self.C('  *%s = data;' % a.c)
            self.C('  *%s_len = size;' % a.c)
            self.C('  return TRUE;')
            self.C('}')
            self.C()
            return
        members = ', '.join('{ %d, %d }' % ((FIXED[a.sig][1], FIXED[a.sig][1]) if a.kind == 'fixed' else (1, 0))
                            for a in args.args)
        self.C('  static const %sMember members[] = { %s };' % (p, members))
        self.C('  gsize start[%d], end[%d];' % (n, n))
        self.C()
        self.C('  if (!%stuple_split (data, size, members, %d, start, end))' % (p, n))
        self.C('    {')
        self.C('      %sset_invalid (error, %s);' % (p, c_string(what)))
        self.C('      return FALSE;')
        self.C('    }')
        for i, a in enumerate(args.args):
            if a.kind == 'string':
                self.C('  if (!%sstring_is_valid (data + start[%d], end[%d] - start[%d], \'%s\'))'
                       % (p, i, i, i, a.sig))
                self.C('    {')
                self.C('      %sset_invalid (error, %s);' % (p, c_string(what)))
                self.C('      return FALSE;')
                self.C('    }')
        for i, a in enumerate(args.args):
            if a.kind == 'fixed':
                if a.sig == 'b':
                    self.C('  *%s = data[start[%d]] != 0;' % (a.c, i))
                else:
                    self.C('  memcpy (%s, data + start[%d], %d);' % (a.c, i, FIXED[a.sig][1]))
            elif a.kind == 'string':
                self.C('  *%s = (const char *) data + start[%d];' % (a.c, i))
            else:
                self.C('  *%s = data + start[%d];' % (a.c, i))
                self.C('  *%s_len = end[%d] - start[%d];' % (a.c, i, i))
        self.C('  return TRUE;')
        self.C('}')
        self.C()

    def reader_locals(self, args, indent='  '):
        for a in args.args:
            if a.kind == 'fixed':
                self.C('%s%s %s = 0;' % (indent, FIXED[a.sig][0], a.c))
            elif a.kind == 'string':
                self.C('%sconst char *%s = NULL;' % (indent, a.c))
            elif a.kind == 'bytes':
                self.C('%sconst guint8 *%s = NULL;' % (indent, a.c))
                self.C('%sgsize %s_len = 0;' % (indent, a.c))
            else:
                self.C('%sGVariant *%s = NULL;' % (indent, a.c))

    def reader_call(self, name, tuple_expr, args, error):
        refs = []
        for a in args.args:
            refs.append('&' + a.c)
            if a.kind == 'bytes':
                refs.append('&%s_len' % a.c)
        return '%s (%s)' % (name, ', '.join([tuple_expr] + refs + [error]))

    def view_values(self, args, fd_names=None):
        vals = []
        for a in args.args:
            if fd_names is not None and a.c in fd_names:
                vals.append(fd_names[a.c])
            else:
                vals.append(a.c)
            if a.kind == 'bytes':
                vals.append(a.c + '_len')
        return vals

    def unref_variants(self, args, indent='  '):
        for a in args.args:
            if a.kind == 'variant':
                self.C('%sg_variant_unref (%s);' % (indent, a.c))

    # --- per interface ---

    def interface(self, iface):
        p = self.p
        L = iface.lower
        Cm = iface.camel
        self.H('/* %s */' % iface.name)
        self.H()
        self.H('#define %s_INTERFACE_NAME %s' % (iface.upper, c_string(iface.name)))
        self.H()
        self.C('/* --- %s %s */' % (iface.name, '-' * max(3, 66 - len(iface.name))))
        self.C()
        xml_name = '%s_%s_xml' % (p.rstrip('_'), L)
        self.C('static const char %s[] =' % xml_name)
        self.C('  %s;' % c_string(interface_xml(iface.el)))
        self.C()

        for m in iface.methods:
            self.emit_codec('%s%s_%s_build_in' % (p, L, m.lower), '%s%s_%s_read_in' % (p, L, m.lower), m.ins,
                            'the arguments of %s.%s' % (iface.name, m.name))
            self.emit_codec('%s%s_%s_build_out' % (p, L, m.lower), '%s%s_%s_read_out' % (p, L, m.lower), m.outs,
                            'the reply to %s.%s' % (iface.name, m.name))
        for s in iface.signals:
            self.emit_codec('%s%s_%s_build' % (p, L, s.lower), '%s%s_%s_read' % (p, L, s.lower), s.args,
                            'signal %s.%s' % (iface.name, s.name))

        self.H('/* Client side. */')
        self.H()
        for m in iface.methods:
            self.client_method(iface, m)
        for pr in iface.properties:
            self.client_property(iface, pr)
        for s in iface.signals:
            self.client_signal(iface, s)
        self.H('/* Server side. */')
        self.H()
        self.skeleton(iface, xml_name)

    def deprecated(self, obj):
        return 'G_GNUC_DEPRECATED ' if obj.deprecated else ''

    def client_method(self, iface, m):
        p = self.p
        L = iface.lower
        fn = '%s_call_%s' % (L, m.lower)
        ins = ['PeerClient *client', 'const char *object_path'] + in_params(m.ins)
        outs = out_params(m.outs)
        T_out = c_string(m.outs.sig)

        # The reply: read in place, then copied out. Fast outs are read
        # from the reply's serialization (a lane's reply as it arrived),
        # the others from the reply tuple.
        tail = '%s%s_%s_finish_reply' % (p, L, m.lower)
        fast_out = m.outs.fast
        self.C('static gboolean')
        ps = ['GBytes *reply' if fast_out else 'GVariant *reply', 'GUnixFDList *reply_fds'] + outs + ['GError **error']
        self.C('%s (%s)' % (tail, join_params(ps, len(tail) + 2)))
        self.C('{')
        single_bytes_out = len(m.outs.args) == 1 and m.outs.args[0].kind == 'bytes'
        if fast_out and m.outs.args and not single_bytes_out:
            self.C('  gsize size;')
            self.C('  const guint8 *data = g_bytes_get_data (reply, &size);')
        if not single_bytes_out:
            self.reader_locals(m.outs)
        fds = m.outs.fd_args
        if fds:
            self.C('  int fds[%d] = { %s };' % (len(fds), ', '.join(['-1'] * len(fds))))
            self.C('  int n_have = reply_fds != NULL ? g_unix_fd_list_get_length (reply_fds) : 0;')
        self.C()
        if single_bytes_out:
            # (ay) is its ay: the reply's own bytes, nothing to read.
            self.C('  (void) error;')
        elif m.outs.args and fast_out:
            self.C('  if (!%s)' % self.reader_call('%s%s_%s_read_out_data' % (p, L, m.lower),
                                               'data != NULL ? data : (const guint8 *) "", size', m.outs, 'error'))
            self.C('    return FALSE;')
        elif m.outs.args:
            self.C('  if (!%s)' % self.reader_call('%s%s_%s_read_out' % (p, L, m.lower), 'reply', m.outs, 'error'))
            self.C('    return FALSE;')
        else:
            self.C('  (void) reply;')
            self.C('  (void) error;')
        if fds:
            for k, a in enumerate(fds):
                self.C('  if (%s < 0 || %s >= n_have)' % (a.c, a.c))
                self.C('    {')
                self.unref_variants(m.outs, '      ')
                self.C('      %sclose_fds (fds, %d);' % (p, len(fds)))
                self.C('      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "The reply to %s.%s has a handle (%%d) with no fd", %s);'
                       % (iface.name, m.name, a.c))
                self.C('      return FALSE;')
                self.C('    }')
                self.C('  fds[%d] = g_unix_fd_list_get (reply_fds, %s, error);' % (k, a.c))
                self.C('  if (fds[%d] < 0)' % k)
                self.C('    {')
                self.unref_variants(m.outs, '      ')
                self.C('      %sclose_fds (fds, %d);' % (p, len(fds)))
                self.C('      return FALSE;')
                self.C('    }')
        fdi = {a.c: k for k, a in enumerate(fds)}
        for a in m.outs.args:
            o = 'out_' + a.name
            if a.c in fdi:
                k = fdi[a.c]
                self.C('  if (%s != NULL)' % o)
                self.C('    *%s = fds[%d];' % (o, k))
                self.C('  else')
                self.C('    close (fds[%d]);' % k)
            elif a.kind == 'fixed':
                self.C('  if (%s != NULL)' % o)
                self.C('    *%s = %s;' % (o, a.c))
            elif a.kind == 'string':
                self.C('  if (%s != NULL)' % o)
                self.C('    *%s = g_strdup (%s);' % (o, a.c))
            elif a.kind == 'bytes':
                self.C('  if (%s != NULL)' % o)
                if single_bytes_out and fast_out:
                    # (ay) is its ay: the reply's own bytes.
                    self.C('    *%s = g_bytes_ref (reply);' % o)
                elif fast_out:
                    self.C('    *%s = %s_len > 0 ? g_bytes_new_from_bytes (reply, %s - data, %s_len) : g_bytes_new (NULL, 0);'
                           % (o, a.c, a.c, a.c))
                else:
                    self.C('    *%s = g_bytes_new_with_free_func (%s, %s_len, (GDestroyNotify) g_variant_unref, g_variant_ref (reply));'
                           % (o, a.c, a.c))
            else:
                self.C('  if (%s != NULL)' % o)
                self.C('    *%s = %s;' % (o, a.c))
                self.C('  else')
                self.C('    g_variant_unref (%s);' % a.c)
        if m.outs.handle_mode:
            self.C('  if (out_fd_list != NULL)')
            self.C('    *out_fd_list = reply_fds != NULL ? g_object_ref (reply_fds) : NULL;')
        self.C('  (void) reply_fds;')
        self.C('  return TRUE;')
        self.C('}')
        self.C()

        # The end of a stub once `reply` is there: the reply read into the
        # out values; a GVariant reply of fast outs as its bytes.
        def finish_reply(as_bytes):
            finish_args = [x.split()[-1].lstrip('*') for x in outs] + ['error']
            self.C('  if (reply == NULL)')
            self.C('    return FALSE;')
            if as_bytes:
                self.C('  {')
                self.C('    g_autoptr(GBytes) bytes = g_variant_get_data_as_bytes (reply);')
                self.C()
                self.C('    return %s (%s);' % (tail, ', '.join(['bytes', 'reply_fds'] + finish_args)))
                self.C('  }')
            else:
                self.C('  return %s (%s);' % (tail, ', '.join(['reply', 'reply_fds'] + finish_args)))

        # The fds of the arguments, when each `h` is an fd.
        def fd_prologue(on_error):
            if not m.ins.fd_args:
                return
            self.C('  fd_list = g_unix_fd_list_new ();')
            for a in m.ins.fd_args:
                self.C('  handle_%s = g_unix_fd_list_append (fd_list, %s, &local_error);' % (a.name, a.c))
                self.C('  if (handle_%s < 0)' % a.name)
                self.C('    {')
                on_error()
                self.C('    }')

        def build_call(borrow):
            vals = []
            for a in m.ins.args:
                vals.append(('handle_' + a.name) if a in m.ins.fd_args else a.c)
                if a.kind == 'bytes':
                    vals.append(a.c + '_len')
            return '%s%s_%s_build_in (%s)' % (p, L, m.lower, ', '.join(vals + [borrow, 'NULL']))

        fd_list_arg = 'fd_list' if (m.ins.fd_args or m.ins.handle_mode) else 'NULL'

        # sync
        doc = ['/**', ' * %s_sync:' % fn, ' * @client: a client', ' * @object_path: the object called']
        doc += doc_in(m.ins, 'the caller')
        doc += doc_out(m.outs)
        doc += [' * @cancellable: (nullable): a cancellable',
                ' * @error: as for peer_client_call_sync()',
                ' *',
                ' * Calls %s.%s and waits for the reply. Out values are set only on' % (iface.name, m.name),
                ' * success; a reply that is not what the method returns is an error.',
                ' *',
                ' * Returns: %TRUE on success',
                ' */']
        self.H('\n'.join(doc))
        self.H('%s%s;' % (self.deprecated(m), proto('gboolean', fn + '_sync',
                                                   ins + outs + ['GCancellable *cancellable', 'GError **error'])))
        self.H()
        self.C(proto('gboolean', fn + '_sync', ins + outs + ['GCancellable *cancellable', 'GError **error']))
        self.C('{')
        # Fast both ways: the arguments' serialization goes as it is and
        # the reply is read where it arrived (on a lane, no GVariant made).
        serialized = m.ins.fast and fast_out
        lone_bytes_in = len(m.ins.args) == 1 and m.ins.args[0].kind == 'bytes'
        if serialized:
            self.C('  g_autoptr(GBytes) reply = NULL;')
            if m.ins.args and not lone_bytes_in:
                self.C('  g_autofree guint8 *body = NULL;')
                self.C('  gsize body_size;')
        else:
            self.C('  g_autoptr(GVariant) reply = NULL;')
        self.C('  g_autoptr(GUnixFDList) reply_fds = NULL;')
        if m.ins.fd_args:
            self.C('  g_autoptr(GUnixFDList) fd_list = NULL;')
            self.C('  GError *local_error = NULL;')
            for a in m.ins.fd_args:
                self.C('  int handle_%s;' % a.name)
        self.C()
        self.C('  g_return_val_if_fail (PEER_IS_CLIENT (client), FALSE);')
        self.C()

        def sync_fail():
            self.C('      g_propagate_error (error, local_error);')
            self.C('      return FALSE;')
        if lone_bytes_in and serialized:
            a = m.ins.args[0]
            self.C('  g_return_val_if_fail (%s != NULL || %s_len == 0, FALSE);' % (a.c, a.c))
        fd_prologue(sync_fail)
        if serialized and m.ins.args and not lone_bytes_in:
            vals = []
            for a in m.ins.args:
                vals.append(('handle_' + a.name) if a in m.ins.fd_args else a.c)
                if a.kind == 'bytes':
                    vals.append(a.c + '_len')
            # NULL after a critical: a value the caller should not have given.
            self.C('  body = %s%s_%s_build_in_data (%s);' % (p, L, m.lower, ', '.join(vals + ['&body_size'])))
            self.C('  if (body == NULL)')
            self.C('    return FALSE;')
        # A synchronous call reads the caller's bytes before it returns:
        # they are borrowed, not copied.
        call_tail = 'PEER_CODEGEN_TYPE (%s), %s, %s, &reply_fds,' % (T_out, m.timeout, fd_list_arg)
        if serialized:
            if not m.ins.args:
                body_args = '(const guint8 *) "", 1'     # (): one zero byte
            elif lone_bytes_in:
                body_args = '%s, %s_len' % (m.ins.args[0].c, m.ins.args[0].c)
            else:
                body_args = 'body, body_size'
            self.C('  reply = peer_client_call_serialized_sync (client, object_path, %s_INTERFACE_NAME, %s,'
                   % (iface.upper, c_string(m.name)))
            self.C('                                            PEER_CODEGEN_TYPE (%s), %s,' % (c_string(m.ins.sig), body_args))
            self.C('                                            %s' % call_tail)
            self.C('                                            cancellable, error);')
        else:
            self.C('  reply = peer_client_call_sync (client, object_path, %s_INTERFACE_NAME, %s,' % (iface.upper, c_string(m.name)))
            self.C('                                 %s,' % build_call('TRUE'))
            self.C('                                 %s' % call_tail)
            self.C('                                 cancellable, error);')
        finish_reply(fast_out and not serialized)
        self.C('}')
        self.C()

        # async
        ps = ins + ['GCancellable *cancellable', 'GAsyncReadyCallback callback', 'gpointer user_data']
        doc = ['/**', ' * %s:' % fn, ' * @client: a client', ' * @object_path: the object called']
        doc += doc_in(m.ins, 'the caller')
        doc += [' * @cancellable: (nullable): a cancellable',
                ' * @callback: called in the thread-default main context of this call',
                ' * @user_data: data for @callback',
                ' *',
                ' * Calls %s.%s; finish with %s_finish(). The arguments are copied.' % (iface.name, m.name, fn),
                ' */']
        self.H('\n'.join(doc))
        self.H('%s%s;' % (self.deprecated(m), proto('void', fn, ps)))
        self.H()
        self.C(proto('void', fn, ps))
        self.C('{')
        if m.ins.fd_args:
            self.C('  g_autoptr(GUnixFDList) fd_list = NULL;')
            self.C('  GError *local_error = NULL;')
            for a in m.ins.fd_args:
                self.C('  int handle_%s;' % a.name)
        self.C()
        self.C('  g_return_if_fail (PEER_IS_CLIENT (client));')
        self.C()

        def async_fail():
            self.C('      g_task_report_error (client, callback, user_data, %s, local_error);' % fn)
            self.C('      return;')
        fd_prologue(async_fail)
        self.C('  peer_client_call (client, object_path, %s_INTERFACE_NAME, %s,' % (iface.upper, c_string(m.name)))
        self.C('                    %s,' % build_call('FALSE'))
        self.C('                    PEER_CODEGEN_TYPE (%s), %s, %s, cancellable, callback, user_data);' % (T_out, m.timeout, fd_list_arg))
        self.C('}')
        self.C()

        ps = ['PeerClient *client'] + outs + ['GAsyncResult *result', 'GError **error']
        doc = ['/**', ' * %s_finish:' % fn, ' * @client: the client']
        doc += doc_out(m.outs)
        doc += [' * @result: the result given to the callback',
                ' * @error: as for peer_client_call_finish()',
                ' *',
                ' * Returns: %TRUE on success',
                ' */']
        self.H('\n'.join(doc))
        self.H('%s%s;' % (self.deprecated(m), proto('gboolean', fn + '_finish', ps)))
        self.H()
        self.C(proto('gboolean', fn + '_finish', ps))
        self.C('{')
        self.C('  g_autoptr(GVariant) reply = NULL;')
        self.C('  g_autoptr(GUnixFDList) reply_fds = NULL;')
        self.C()
        self.C('  g_return_val_if_fail (PEER_IS_CLIENT (client), FALSE);')
        self.C()
        self.C('  /* An fd that could not be sent was reported by the call itself. */')
        self.C('  if (g_async_result_is_tagged (result, %s))' % fn)
        self.C('    return g_task_propagate_boolean (G_TASK (result), error);')
        self.C('  reply = peer_client_call_finish (client, &reply_fds, result, error);')
        finish_reply(fast_out)
        self.C('}')
        self.C()

    def client_property(self, iface, pr):
        L = iface.lower
        a = pr.arg
        T = c_string(pr.sig)
        if pr.access in ('read', 'readwrite'):
            fn = '%s_get_%s_sync' % (L, pr.lower)
            if a.kind == 'fixed':
                otype = '%s *' % FIXED[a.sig][0]
            elif a.kind == 'string':
                otype = 'char **'
            elif a.kind == 'bytes':
                otype = 'GBytes **'
            else:
                otype = 'GVariant **'
            ps = ['PeerClient *client', 'const char *object_path', otype + 'out_value',
                  'GCancellable *cancellable', 'GError **error']
            self.H('/**\n * %s:\n * @client: a client\n * @object_path: the object\n'
                   ' * @out_value: (out) (optional) (transfer full): the value of %s\n'
                   ' * @cancellable: (nullable): a cancellable\n'
                   ' * @error: as for peer_client_get_property_sync(); G_IO_ERROR_INVALID_DATA when\n'
                   ' *   the value does not have the property\'s type\n *\n * Returns: %%TRUE on success\n */'
                   % (fn, pr.name))
            self.H('%s%s;' % (self.deprecated(pr), proto('gboolean', fn, ps)))
            self.H()
            self.C(proto('gboolean', fn, ps))
            self.C('{')
            self.C('  g_autoptr(GVariant) value = NULL;')
            self.C()
            self.C('  g_return_val_if_fail (PEER_IS_CLIENT (client), FALSE);')
            self.C()
            self.C('  value = peer_client_get_property_sync (client, object_path, %s_INTERFACE_NAME, %s,'
                   % (iface.upper, c_string(pr.name)))
            self.C('                                         cancellable, error);')
            self.C('  if (value == NULL)')
            self.C('    return FALSE;')
            self.C('  if (!g_variant_is_of_type (value, PEER_CODEGEN_TYPE (%s)))' % T)
            self.C('    {')
            self.C('      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "Property %s.%s has type %%s, not %s",'
                   % (iface.name, pr.name, pr.sig))
            self.C('                   g_variant_get_type_string (value));')
            self.C('      return FALSE;')
            self.C('    }')
            self.C('  if (out_value == NULL)')
            self.C('    return TRUE;')
            if a.kind == 'fixed':
                self.C('  *out_value = g_variant_get_%s (value);' % FIXED[a.sig][2])
            elif a.kind == 'string':
                self.C('  *out_value = g_variant_dup_string (value, NULL);')
            elif a.kind == 'bytes':
                self.C('  *out_value = g_variant_get_data_as_bytes (value);')
            else:
                self.C('  *out_value = g_steal_pointer (&value);')
            self.C('  return TRUE;')
            self.C('}')
            self.C()
        if pr.access in ('write', 'readwrite'):
            fn = '%s_set_%s_sync' % (L, pr.lower)
            ps = ['PeerClient *client', 'const char *object_path'] + in_params(Args([a]), fd_as_int=False) + \
                 ['GCancellable *cancellable', 'GError **error']
            self.H('/**\n * %s:\n * @client: a client\n * @object_path: the object\n%s\n'
                   ' * @cancellable: (nullable): a cancellable\n'
                   ' * @error: as for peer_client_set_property_sync()\n *\n'
                   ' * Writes %s.\n *\n * Returns: %%TRUE when the server accepted the value\n */'
                   % (fn, '\n'.join(doc_in(Args([a]), 'the caller')), pr.name))
            self.H('%s%s;' % (self.deprecated(pr), proto('gboolean', fn, ps)))
            self.H()
            self.C(proto('gboolean', fn, ps))
            self.C('{')
            self.C('  g_return_val_if_fail (PEER_IS_CLIENT (client), FALSE);')
            self.C()
            self.C('  return peer_client_set_property_sync (client, object_path, %s_INTERFACE_NAME, %s,'
                   % (iface.upper, c_string(pr.name)))
            self.C('                                        %s,' % self.single_value(a))
            self.C('                                        cancellable, error);')
            self.C('}')
            self.C()

    def single_value(self, a):
        if a.kind == 'fixed':
            return 'g_variant_new_%s (%s)' % (FIXED[a.sig][2], a.c)
        if a.kind == 'string':
            return 'g_variant_new_%s (%s)' % ({'s': 'string', 'o': 'object_path', 'g': 'signature'}[a.sig], a.c)
        if a.kind == 'bytes':
            return 'g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, %s, %s_len, 1)' % (a.c, a.c)
        return a.c

    def client_signal(self, iface, s):
        p = self.p
        L = iface.lower
        func = '%s%sFunc' % (iface.camel, s.camel)
        ps = ['PeerClient *client', 'const char *object_path'] + view_params(s.args, False) + ['gpointer user_data']
        doc = ['/**', ' * %s:' % func, ' * @client: the client', ' * @object_path: the emitting object']
        doc += doc_view(s.args, 'callback')
        doc += [' * @user_data: data given when subscribing', ' *',
                ' * Receives %s.%s with its arguments unpacked.' % (iface.name, s.name), ' */']
        self.H('\n'.join(doc))
        self.H('typedef void (*%s) (%s);' % (func, join_params(ps, len(func) + 17)))
        self.H()

        closure = '%s%s_%s_closure' % (p, L, s.lower)
        Closure = '%s%sClosure' % (iface.camel, s.camel)
        self.C('typedef struct {')
        self.C('  %s callback;' % func)
        self.C('  gpointer user_data;')
        self.C('  GDestroyNotify destroy;')
        self.C('} %s;' % Closure)
        self.C()
        self.C('static void')
        self.C('%s_free (gpointer data)' % closure)
        self.C('{')
        self.C('  %s *closure = data;' % Closure)
        self.C()
        self.C('  if (closure->destroy != NULL)')
        self.C('    closure->destroy (closure->user_data);')
        self.C('  g_free (closure);')
        self.C('}')
        self.C()
        self.C('static void')
        tramp = '%s%s_on_%s' % (p, L, s.lower)
        tps = ['PeerClient *client', 'const char *object_path', 'const char *interface_name',
               'const char *signal_name', 'GVariant *parameters', 'gpointer user_data']
        self.C('%s (%s)' % (tramp, join_params(tps, len(tramp) + 2)))
        self.C('{')
        self.C('  %s *closure = user_data;' % Closure)
        self.C('  g_autoptr(GError) error = NULL;')
        self.C('  (void) interface_name;')
        self.C('  (void) signal_name;')
        self.reader_locals(s.args)
        self.C()
        self.C('  /* What a peer sends is not trusted: a signal of another type is')
        self.C('   * dropped, not delivered half-read. */')
        self.C('  if (parameters == NULL || !g_variant_is_of_type (parameters, PEER_CODEGEN_TYPE (%s))%s'
               % (c_string(s.args.sig), ' ||' if s.args.args else ')'))
        if s.args.args:
            self.C('      !%s)' % self.reader_call('%s%s_%s_read' % (p, L, s.lower), 'parameters', s.args, '&error'))
        self.C('    {')
        self.C('      g_debug ("peer-codegen: dropped %s.%s from %%s: %%s", object_path,'
               % (iface.name, s.name))
        self.C('               error != NULL ? error->message : "wrong type");')
        self.C('      return;')
        self.C('    }')
        self.C('  closure->callback (%s);' % ', '.join(['client', 'object_path'] + self.view_values(s.args) + ['closure->user_data']))
        self.unref_variants(s.args)
        self.C('}')
        self.C()
        fn = '%s_subscribe_%s' % (L, s.lower)
        ps = ['PeerClient *client', 'const char *object_path', '%s callback' % func, 'gpointer user_data',
              'GDestroyNotify destroy']
        self.H('/**\n * %s:\n * @client: a client\n * @object_path: (nullable): only from this object, or %%NULL for any\n'
               ' * @callback: called in the thread-default main context of this call\n'
               ' * @user_data: (closure): data for @callback\n'
               ' * @destroy: (nullable): frees @user_data after unsubscribing\n *\n'
               ' * Subscribes to %s.%s; unsubscribe with peer_client_unsubscribe_signal().\n'
               ' * Signals whose arguments do not have the right type are dropped.\n *\n'
               ' * Returns: a subscription id\n */' % (fn, iface.name, s.name))
        self.H('%s%s;' % (self.deprecated(s), proto('guint', fn, ps)))
        self.H()
        self.C(proto('guint', fn, ps))
        self.C('{')
        self.C('  %s *closure;' % Closure)
        self.C()
        self.C('  g_return_val_if_fail (PEER_IS_CLIENT (client), 0);')
        self.C('  g_return_val_if_fail (callback != NULL, 0);')
        self.C()
        self.C('  closure = g_new (%s, 1);' % Closure)
        self.C('  closure->callback = callback;')
        self.C('  closure->user_data = user_data;')
        self.C('  closure->destroy = destroy;')
        self.C('  return peer_client_subscribe_signal (client, object_path, %s_INTERFACE_NAME, %s,'
               % (iface.upper, c_string(s.name)))
        self.C('                                       %s, closure, %s_free);' % (tramp, closure))
        self.C('}')
        self.C()

    def skeleton(self, iface, xml_name):
        p = self.p
        L = iface.lower
        Cm = iface.camel
        Vt = Cm + 'Vtable'

        # The table of handlers.
        writable = [pr for pr in iface.properties if pr.access in ('write', 'readwrite')]
        doc = ['/**', ' * %s:' % Vt]
        for m in iface.methods:
            doc.append(' * @handle_%s: (nullable): handles %s: reply with %s_complete_%s() or' % (m.lower, m.name, L, m.lower))
            doc.append(' *   peer_call_return_error(), now or later (peer_call_ref() to keep the call)%s'
                       % ('; runs on any thread (org.libpeer.ThreadSafe)' if m.thread_safe else
                          '; runs in the server\'s main context'))
        for pr in writable:
            doc.append(' * @write_%s: (nullable): judges a peer\'s write to %s, given the new value' % (pr.lower, pr.name))
            doc.append(' *   unpacked (valid while it runs): %TRUE accepts it (then it is stored and')
            doc.append(' *   PropertiesChanged goes out), %FALSE with @error set refuses it; runs in the')
            doc.append(' *   server\'s main context. Without it, writes are accepted as they are.')
        doc += [' *', ' * The handlers of %s. A %%NULL handler answers' % iface.name,
                ' * org.freedesktop.DBus.Error.UnknownMethod. Each gets the call and its',
                ' * arguments, already checked and unpacked, all (transfer none): strings',
                ' * and bytes stay valid while the call lives (take a reference on the call',
                ' * to keep them), a `GVariant` while the handler runs (g_variant_ref() to',
                ' * keep it), and an `h` is an fd the call owns and closes',
                ' * when it is freed (dup() it to keep it). Arguments a peer sent malformed',
                ' * are answered org.libpeer.Error.InvalidArgs before any handler runs.',
                ' * Calls to a #PeerSubtree\'s children run in the main context, whatever',
                ' * the flags; peer_call_get_object_path() says which child was called.']
        if writable:
            doc += [' *', ' * The write_ hooks are the interface\'s #PeerPropertySetFunc:',
                    ' * peer_interface_set_property_funcs() on the interface replaces them.']
        doc += [' */']
        self.H('\n'.join(doc))
        self.H('typedef struct {')
        for m in iface.methods:
            ps = ['PeerCall *call'] + view_params(m.ins, True) + ['gpointer user_data']
            self.H('  void (*handle_%s) (%s);' % (m.lower, join_params(ps, len(m.lower) + 19)))
        for pr in writable:
            ps = ['PeerInterface *iface', 'PeerConnection *caller'] + value_params(pr.arg) + \
                 ['GError **error', 'gpointer user_data']
            self.H('  gboolean (*write_%s) (%s);' % (pr.lower, join_params(ps, len(pr.lower) + 22)))
        self.H('  /*< private >*/')
        self.H('  gpointer padding[4];')
        self.H('} %s;' % Vt)
        self.H()

        Sk = '%sSkeleton' % Cm
        self.C('/* What the method entries point to: lives as long as the interface. */')
        self.C('typedef struct {')
        self.C('  %s vtable;' % Vt)
        self.C('  gpointer user_data;')
        self.C('} %s;' % Sk)
        self.C()

        if writable:
            tramp = '%s%s_write_property' % (p, L)
            tps = ['PeerInterface *iface', 'PeerConnection *caller', 'const char *property_name', 'GVariant *value',
                   'GError **error', 'gpointer user_data']
            self.C('/* The interface\'s PeerPropertySetFunc: each write to its typed hook. */')
            self.C('static gboolean')
            self.C('%s (%s)' % (tramp, join_params(tps, len(tramp) + 2)))
            self.C('{')
            self.C('  %s *skeleton = user_data;' % Sk)
            self.C()
            for pr in writable:
                a = pr.arg
                hook = 'skeleton->vtable.write_%s' % pr.lower
                self.C('  if (g_str_equal (property_name, %s) && %s != NULL)' % (c_string(pr.name), hook))
                self.C('    {')
                self.C('      /* GDBus checked the type; a value of another is refused, not misread. */')
                self.C('      if (!g_variant_is_of_type (value, PEER_CODEGEN_TYPE (%s)))' % c_string(pr.sig))
                self.C('        {')
                self.C('          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "Property %s.%s has type %s, not %%s",'
                       % (iface.name, pr.name, pr.sig))
                self.C('                       g_variant_get_type_string (value));')
                self.C('          return FALSE;')
                self.C('        }')
                if a.kind == 'fixed':
                    self.C('      return %s (iface, caller, g_variant_get_%s (value), error, skeleton->user_data);'
                           % (hook, FIXED[a.sig][2]))
                elif a.kind == 'string':
                    self.C('      return %s (iface, caller, g_variant_get_string (value, NULL), error, skeleton->user_data);'
                           % hook)
                elif a.kind == 'bytes':
                    self.C('      {')
                    self.C('        gsize len = 0;')
                    self.C('        const guint8 *data = g_variant_get_fixed_array (value, &len, 1);')
                    self.C()
                    self.C('        return %s (iface, caller, data, len, error, skeleton->user_data);' % hook)
                    self.C('      }')
                else:
                    self.C('      return %s (iface, caller, value, error, skeleton->user_data);' % hook)
                self.C('    }')
            self.C('  return TRUE;')
            self.C('}')
            self.C()

        for m in iface.methods:
            self.C('static void')
            self.C('%s%s_handle_%s (PeerCall *call,' % (p, L, m.lower))
            self.C('%s gpointer  user_data)' % (' ' * len('%s%s_handle_%s' % (p, L, m.lower))))
            self.C('{')
            self.C('  %s *skeleton = user_data;' % Sk)
            if m.ins.args:
                # Only where it is used: clang warns of an unused one even
                # with a cleanup attribute.
                self.C('  g_autoptr(GError) error = NULL;')
            self.reader_locals(m.ins)
            fds = m.ins.fd_args
            if fds:
                self.C('  const int *fds = NULL;')
                self.C('  int n_fds = 0;')
            self.C()
            if m.ins.args:
                self.C('  if (!%s)' % self.reader_call('%s%s_%s_read_in' % (p, L, m.lower),
                                                       'peer_call_get_parameters (call)', m.ins, '&error'))
                self.C('    {')
                self.C('      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "%s", error->message);')
                self.C('      return;')
                self.C('    }')
            if fds:
                self.C('  if (peer_call_get_unix_fd_list (call) != NULL)')
                self.C('    fds = g_unix_fd_list_peek_fds (peer_call_get_unix_fd_list (call), &n_fds);')
                for a in fds:
                    self.C('  if (%s < 0 || %s >= n_fds)' % (a.c, a.c))
                    self.C('    {')
                    self.unref_variants(m.ins, '      ')
                    self.C('      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,')
                    self.C('                              "Handle %%d of %s.%s indexes no fd of the call", %s);'
                           % (iface.name, m.name, a.c))
                    self.C('      return;')
                    self.C('    }')
            fd_names = {a.c: 'fds[%s]' % a.c for a in fds}
            self.C('  skeleton->vtable.handle_%s (%s);' % (
                m.lower, ', '.join(['call'] + self.view_values(m.ins, fd_names) + ['skeleton->user_data'])))
            self.unref_variants(m.ins)
            self.C('}')
            self.C()

        # complete_<method>
        for m in iface.methods:
            fn = '%s_complete_%s' % (L, m.lower)
            ps = ['PeerCall *call'] + in_params(m.outs)
            doc = ['/**', ' * %s:' % fn, ' * @call: (transfer none): a call to %s not yet replied to' % m.name]
            doc += doc_in(m.outs, 'the handler')
            doc += [' *', ' * Replies to %s.%s. Thread-safe.' % (iface.name, m.name)]
            if any(a.kind == 'bytes' for a in m.outs.args) and len(m.outs.args) == 1:
                doc += [' * Bytes that lie in the call\'s own arguments are sent without a copy.']
            doc += [' */']
            self.H('\n'.join(doc))
            self.H('%s;' % proto('void', fn, ps))
            self.H()
            self.C(proto('void', fn, ps))
            self.C('{')
            fds = m.outs.fd_args
            single_bytes = len(m.outs.args) == 1 and m.outs.args[0].kind == 'bytes'
            if fds:
                self.C('  g_autoptr(GUnixFDList) fd_list = g_unix_fd_list_new ();')
                self.C('  GError *error = NULL;')
                for a in fds:
                    self.C('  int handle_%s;' % a.name)
            if single_bytes:
                self.C('  GVariant *parameters;')
                self.C('  GVariant *keep = NULL;')
            self.C()
            self.C('  g_return_if_fail (call != NULL);')
            self.C()
            for a in fds:
                self.C('  handle_%s = g_unix_fd_list_append (fd_list, %s, &error);' % (a.name, a.c))
                self.C('  if (handle_%s < 0)' % a.name)
                self.C('    {')
                self.C('      peer_call_take_error (call, error);')
                self.C('      return;')
                self.C('    }')
            if single_bytes:
                a = m.outs.args[0]
                self.C('  /* An echo of the arguments, or a part of them, shares their bytes. */')
                self.C('  parameters = peer_call_get_parameters (call);')
                self.C('  if (parameters != NULL)')
                self.C('    {')
                self.C('      guintptr at = (guintptr) %sdata_of (parameters);' % p)
                self.C('      gsize size = g_variant_get_size (parameters);')
                self.C()
                self.C('      if ((guintptr) %s == at && %s_len == size &&' % (a.c, a.c))
                self.C('          g_str_equal (g_variant_get_type_string (parameters), "(ay)"))')
                self.C('        {')
                self.C('          peer_call_return_value (call, parameters);')
                self.C('          return;')
                self.C('        }')
                self.C('      if ((guintptr) %s >= at && (guintptr) %s + %s_len <= at + size)' % (a.c, a.c, a.c))
                self.C('        keep = parameters;')
                self.C('    }')
            vals = []
            for a in m.outs.args:
                vals.append(('handle_' + a.name) if a in fds else a.c)
                if a.kind == 'bytes':
                    vals.append(a.c + '_len')
            build = '%s%s_%s_build_out (%s)' % (p, L, m.lower, ', '.join(vals + ['FALSE', 'keep' if single_bytes else 'NULL']))
            if fds or m.outs.handle_mode:
                self.C('  peer_call_return_value_with_unix_fd_list (call, %s, fd_list);' % build)
            else:
                self.C('  peer_call_return_value (call, %s);' % build)
            self.C('}')
            self.C()

        # emit_<signal>
        for s in iface.signals:
            fn = '%s_emit_%s' % (L, s.lower)
            ps = ['PeerInterface *iface', 'PeerConnection *destination'] + in_params(s.args, fd_as_int=False) + ['GError **error']
            doc = ['/**', ' * %s:' % fn, ' * @iface: an exported %s' % iface.name,
                   ' * @destination: (nullable): one peer, or %NULL for every connected peer']
            doc += doc_in(s.args, 'the caller')
            doc += [' * @error: as for peer_interface_emit_signal()', ' *',
                    ' * Emits %s. Thread-safe.' % s.name, ' *', ' * Returns: %TRUE when the signal was queued', ' */']
            self.H('\n'.join(doc))
            self.H('%s%s;' % (self.deprecated(s), proto('gboolean', fn, ps)))
            self.H()
            self.C(proto('gboolean', fn, ps))
            self.C('{')
            self.C('  g_return_val_if_fail (PEER_IS_INTERFACE (iface), FALSE);')
            self.C()
            vals = self.view_values(s.args)
            self.C('  return peer_interface_emit_signal (iface, destination, %s,' % c_string(s.name))
            self.C('                                     %s%s_%s_build (%s),' % (p, L, s.lower, ', '.join(vals + ['FALSE', 'NULL'])))
            self.C('                                     error);')
            self.C('}')
            self.C()

            # One object's: a path @iface is exported at, or a child of a
            # subtree that serves it.
            fn = '%s_emit_object_%s' % (L, s.lower)
            ps = ['PeerInterface *iface', 'const char *object_path', 'PeerConnection *destination'] + \
                 in_params(s.args, fd_as_int=False) + ['GError **error']
            doc = ['/**', ' * %s:' % fn, ' * @iface: a %s interface, exported or served by an exported #PeerSubtree' % iface.name,
                   ' * @object_path: the emitting object: a path @iface is exported at, or a child',
                   ' *   of a subtree whose lookup gives @iface',
                   ' * @destination: (nullable): one peer, or %NULL for every connected peer']
            doc += doc_in(s.args, 'the caller')
            doc += [' * @error: as for peer_interface_emit_object_signal()', ' *',
                    ' * Emits %s from @object_path alone. Thread-safe.' % s.name, ' *',
                    ' * Returns: %TRUE when the signal was queued', ' */']
            self.H('\n'.join(doc))
            self.H('%s%s;' % (self.deprecated(s), proto('gboolean', fn, ps)))
            self.H()
            self.C(proto('gboolean', fn, ps))
            self.C('{')
            self.C('  g_return_val_if_fail (PEER_IS_INTERFACE (iface), FALSE);')
            self.C('  g_return_val_if_fail (object_path != NULL, FALSE);')
            self.C()
            self.C('  return peer_interface_emit_object_signal (iface, object_path, destination, %s,' % c_string(s.name))
            self.C('                                            %s%s_%s_build (%s),'
                   % (p, L, s.lower, ', '.join(vals + ['FALSE', 'NULL'])))
            self.C('                                            error);')
            self.C('}')
            self.C()

        # set_<property>
        for pr in iface.properties:
            fn = '%s_set_%s' % (L, pr.lower)
            ps = ['PeerInterface *iface'] + in_params(Args([pr.arg]), fd_as_int=False) + ['GError **error']
            self.H('/**\n * %s:\n * @iface: a %s interface\n%s\n * @error: as for peer_interface_set_property()\n *\n'
                   ' * Stores %s; peers are told as its EmitsChangedSignal says. Thread-safe.\n *\n'
                   ' * Returns: %%TRUE on success\n */' % (fn, iface.name, '\n'.join(doc_in(Args([pr.arg]), 'the caller')), pr.name))
            self.H('%s;' % proto('gboolean', fn, ps))
            self.H()
            self.C(proto('gboolean', fn, ps))
            self.C('{')
            self.C('  g_return_val_if_fail (PEER_IS_INTERFACE (iface), FALSE);')
            self.C()
            self.C('  return peer_interface_set_property (iface, %s, %s, error);'
                   % (c_string(pr.name), self.single_value(pr.arg)))
            self.C('}')
            self.C()

            fn = '%s_set_object_%s' % (L, pr.lower)
            ps = ['PeerInterface *iface', 'const char *object_path'] + in_params(Args([pr.arg]), fd_as_int=False) + \
                 ['GError **error']
            self.H('/**\n * %s:\n * @iface: a %s interface\n'
                   ' * @object_path: one object of @iface: a path it is exported at, or a child of a\n'
                   ' *   subtree whose lookup gives @iface\n%s\n'
                   ' * @error: as for peer_interface_set_object_property()\n *\n'
                   ' * Stores %s for @object_path alone (peer_interface_forget_object() drops\n'
                   ' * it); peers are told from @object_path. Thread-safe.\n *\n'
                   ' * Returns: %%TRUE on success\n */'
                   % (fn, iface.name, '\n'.join(doc_in(Args([pr.arg]), 'the caller')), pr.name))
            self.H('%s;' % proto('gboolean', fn, ps))
            self.H()
            self.C(proto('gboolean', fn, ps))
            self.C('{')
            self.C('  g_return_val_if_fail (PEER_IS_INTERFACE (iface), FALSE);')
            self.C('  g_return_val_if_fail (object_path != NULL, FALSE);')
            self.C()
            self.C('  return peer_interface_set_object_property (iface, object_path, %s, %s, error);'
                   % (c_string(pr.name), self.single_value(pr.arg)))
            self.C('}')
            self.C()

        # interface_new / export
        fn = '%s_interface_new' % L
        ps = ['const %s *vtable' % Vt, 'gpointer user_data', 'GError **error']
        self.H('/**\n * %s:\n * @vtable: (nullable): the handlers, copied\n'
               ' * @user_data: passed to every handler\n * @error: set when the interface cannot be built\n *\n'
               ' * A %s to export with peer_server_export() (after setting its\n'
               ' * properties, say), or to serve the children of a #PeerSubtree: have its\n'
               ' * lookup hand it out, and name it with peer_subtree_add_interface(). The\n'
               ' * handlers see which object was called in peer_call_get_object_path(); the\n'
               ' * *_set_object_*() and *_emit_object_*() functions give each object values\n'
               ' * and signals of its own.\n *\n'
               ' * Returns: (transfer full) (nullable): a new interface, or %%NULL\n */' % (fn, iface.name))
        self.H('%s;' % proto('PeerInterface *', fn, ps))
        self.H()
        self.C(proto('PeerInterface *', fn, ps))
        self.C('{')
        self.C('  g_autoptr(PeerInterface) iface = NULL;')
        self.C('  %s *skeleton;' % Sk)
        if iface.methods:
            self.C('  PeerMethodEntry entries[%d];' % len(iface.methods))
            self.C('  gsize n = 0;')
        self.C()
        self.C('  iface = %sinterface_new_for_xml (%s, %s_INTERFACE_NAME, error);' % (p, xml_name, iface.upper))
        self.C('  if (iface == NULL)')
        self.C('    return NULL;')
        self.C('  skeleton = g_new0 (%s, 1);' % Sk)
        self.C('  if (vtable != NULL)')
        self.C('    skeleton->vtable = *vtable;')
        self.C('  skeleton->user_data = user_data;')
        self.C('  g_object_set_data_full (G_OBJECT (iface), "peer-codegen-skeleton", skeleton, g_free);')
        if iface.methods:
            for m in iface.methods:
                flags = 'PEER_METHOD_FLAGS_THREAD_SAFE' if m.thread_safe else 'PEER_METHOD_FLAGS_NONE'
                self.C('  if (skeleton->vtable.handle_%s != NULL)' % m.lower)
                self.C('    entries[n++] = (PeerMethodEntry) { %s, %s%s_handle_%s, %s };'
                       % (c_string(m.name), p, L, m.lower, flags))
            self.C('  if (n > 0 && !peer_interface_add_methods (iface, entries, n, skeleton, error))')
            self.C('    return NULL;')
        if writable:
            self.C('  if (%s)' % ' ||\n      '.join('skeleton->vtable.write_%s != NULL' % pr.lower for pr in writable))
            self.C('    peer_interface_set_property_funcs (iface, NULL, %s%s_write_property, skeleton, NULL);' % (p, L))
        self.C('  return g_steal_pointer (&iface);')
        self.C('}')
        self.C()
        fn = '%s_export' % L
        ps = ['PeerServer *server', 'const char *object_path', 'const %s *vtable' % Vt, 'gpointer user_data',
              'GError **error']
        self.H('/**\n * %s:\n * @server: a server\n * @object_path: where to serve it\n'
               ' * @vtable: (nullable): the handlers, copied\n * @user_data: passed to every handler\n'
               ' * @error: as for peer_server_export()\n *\n'
               ' * Serves %s at @object_path with typed handlers. Unexport with\n'
               ' * peer_server_unexport(); emit signals and set properties on the result.\n *\n'
               ' * Returns: (transfer full) (nullable): the exported interface, or %%NULL\n */' % (fn, iface.name))
        self.H('%s;' % proto('PeerInterface *', fn, ps))
        self.H()
        self.C(proto('PeerInterface *', fn, ps))
        self.C('{')
        self.C('  g_autoptr(PeerInterface) iface = NULL;')
        self.C()
        self.C('  g_return_val_if_fail (PEER_IS_SERVER (server), NULL);')
        self.C()
        self.C('  iface = %s_interface_new (vtable, user_data, error);' % L)
        self.C('  if (iface == NULL || !peer_server_export (server, object_path, iface, error))')
        self.C('    return NULL;')
        self.C('  return g_steal_pointer (&iface);')
        self.C('}')
        self.C()

    def generate(self, header_name):
        guard = re.sub(r'[^A-Za-z0-9]', '_', os.path.basename(header_name)).upper()
        self.H('/* %s: generated by peer-codegen from %s. Do not edit. */'
               % (os.path.basename(header_name), ', '.join(os.path.basename(f) for f in self.opts.files)))
        self.H('#ifndef %s' % guard)
        self.H('#define %s' % guard)
        self.H()
        self.H('#include <libpeer.h>')
        self.H()
        self.H('G_BEGIN_DECLS')
        self.H()
        self.C('/* Generated by peer-codegen from %s. Do not edit. */'
               % ', '.join(os.path.basename(f) for f in self.opts.files))
        self.C('#include <string.h>')
        self.C('#include <unistd.h>')
        self.C()
        self.C('#include "%s"' % os.path.basename(header_name))
        self.C()
        self.C('/* The tool checked every type string: G_VARIANT_TYPE() would check it')
        self.C(' * again on each call (some 240 instructions) unless G_DISABLE_CHECKS. */')
        self.C('#ifndef PEER_CODEGEN_TYPE')
        self.C('#define PEER_CODEGEN_TYPE(string) ((const GVariantType *) (string))')
        self.C('#endif')
        self.C()
        self.runtime()
        for iface in self.ifaces:
            self.interface(iface)
        self.H('G_END_DECLS')
        self.H()
        self.H('#endif /* %s */' % guard)
        # A helper unused by every interface of a file must not warn.
        self.C('static void %sunused (void) G_GNUC_UNUSED;' % self.p)
        self.C('static void')
        self.C('%sunused (void)' % self.p)
        self.C('{')
        for f in ('tuple_size', 'write_offset', 'tuple_split', 'string_is_valid', 'data_of', 'set_invalid', 'close_fds'):
            self.C('  (void) %s%s;' % (self.p, f))
        self.C('}')
        return '\n'.join(self.h) + '\n', '\n'.join(self.c) + '\n'


def check_clashes(ifaces):
    """Two things generated under one C name is an error, not a surprise at
    link time."""
    names = {}

    def add(name, iface, line, what):
        if name in names:
            f, l, w = names[name]
            raise InputError(iface.filename, line, "name clash: %s and %s (%s:%d) are both '%s' in C"
                             % (what, w, f, l, name))
        names[name] = (iface.filename, line, what)

    for iface in ifaces:
        L = iface.lower
        add(L + '_export', iface, iface.line, 'interface ' + iface.name)
        add(L + '_interface_new', iface, iface.line, 'interface ' + iface.name)
        add(iface.camel + 'Vtable', iface, iface.line, 'interface ' + iface.name)
        for m in iface.methods:
            what = 'method %s.%s' % (iface.name, m.name)
            for n in ('_call_%s', '_call_%s_sync', '_call_%s_finish', '_complete_%s'):
                add(L + n % m.lower, iface, m.line, what)
        for s in iface.signals:
            what = 'signal %s.%s' % (iface.name, s.name)
            add(L + '_emit_' + s.lower, iface, s.line, what)
            add(L + '_emit_object_' + s.lower, iface, s.line, what)
            add(L + '_subscribe_' + s.lower, iface, s.line, what)
            add(iface.camel + s.camel + 'Func', iface, s.line, what)
        for p in iface.properties:
            what = 'property %s.%s' % (iface.name, p.name)
            add(L + '_get_%s_sync' % p.lower, iface, p.line, what)
            add(L + '_set_%s_sync' % p.lower, iface, p.line, what)
            add(L + '_set_%s' % p.lower, iface, p.line, what)
            add(L + '_set_object_%s' % p.lower, iface, p.line, what)


def main(argv):
    ap = argparse.ArgumentParser(prog='peer-codegen',
                                 description='Typed libpeer client stubs and server skeletons from D-Bus introspection XML.')
    ap.add_argument('files', nargs='+', metavar='FILE.xml')
    ap.add_argument('--c-namespace', default='', help='prefix of C names, e.g. "Peer" gives peer_<iface>_...')
    ap.add_argument('--interface-prefix', default='', help='stripped from interface names, e.g. "org.libpeer."')
    ap.add_argument('--output-header', required=True)
    ap.add_argument('--output-source', required=True)
    ap.add_argument('--version', action='version', version='peer-codegen ' + VERSION)
    opts = ap.parse_args(argv)
    opts.symbol_prefix = '_' + (snake(opts.c_namespace) + '_' if opts.c_namespace else '') + 'codegen_'

    try:
        ifaces = []
        for f in opts.files:
            try:
                node = parse_xml(f)
            except OSError as e:
                raise InputError(f, 0, 'cannot read it: ' + (e.strerror or str(e)))
            for el in node.children:
                if el.tag == 'interface':
                    ifaces.append(parse_interface(el, f, opts))
        if not ifaces:
            raise InputError(opts.files[0], 1, 'no <interface> element')
        check_clashes(ifaces)
        h, c = Gen(ifaces, opts).generate(opts.output_header)
    except InputError as e:
        # A file that cannot be read has no line to name.
        where = '%s:%d' % (e.filename, e.line) if e.line > 0 else e.filename
        sys.stderr.write('%s: error: %s\n' % (where, ' '.join(e.message.split())))
        return 1
    with open(opts.output_header, 'w') as f:
        f.write(h)
    with open(opts.output_source, 'w') as f:
        f.write(c)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
