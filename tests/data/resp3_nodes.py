"""RESP3 replies read as typed trees, and written as Rust `Node` literals: shared by the
generators of COMMAND data (gen_command_info.py, gen_sentinel_commands.py)."""


def read(f):
    line = f.readline()
    t, rest = line[:1], line[1:-2]
    if t == b'+':
        return ('simple', rest.decode())
    if t == b'-':
        raise RuntimeError(rest.decode())
    if t == b':':
        return ('int', int(rest))
    if t == b'$':
        n = int(rest)
        return ('bulk', f.read(n + 2)[:-2].decode())
    if t == b'_':
        return ('null', None)
    if t in (b'*', b'~'):
        kind = 'array' if t == b'*' else 'set'
        return (kind, [read(f) for _ in range(int(rest))])
    if t == b'%':
        return ('map', [(read(f), read(f)) for _ in range(int(rest))])
    raise ValueError(line)


def command(s, f, *args):
    s.sendall(b'*%d\r\n' % len(args) + b''.join(b'$%d\r\n%s\r\n' % (len(a), a.encode()) for a in args))
    return read(f)


def rs(x):
    return '"' + x.replace('\\', '\\\\').replace('"', '\\"') + '"'


def node(n):
    kind, v = n
    if kind == 'simple':
        return f'Node::Simple({rs(v)})'
    if kind == 'bulk':
        return f'Node::Bulk({rs(v)})'
    if kind == 'int':
        return f'Node::Int({v})'
    if kind in ('array', 'set'):
        return f'Node::{"Array" if kind == "array" else "Set"}(&[{", ".join(node(x) for x in v)}])'
    if kind == 'map':
        return f'Node::Map(&[{", ".join(f"({rs(k[1])}, {node(x)})" for k, x in v)}])'
    raise ValueError(n)
