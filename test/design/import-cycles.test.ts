import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import t from 'tap';
import ts from 'typescript';
import { packageRoot } from '../../common/package-root.js';

// The source's import graph has no cycles. A cycle held together only because
// one side reads the other lazily (inside a function, after both have loaded)
// works until someone moves a line to module top level, and then a binding is
// undefined at start-up; it also means neither module can be understood or
// tested without the other. So the shared piece belongs in a third module both
// import.
//
// Type-only imports (`import type`, `export type ... from`, `import('...')`
// types) count as edges. They vanish from the emitted JavaScript, so they
// cannot fail at run time, but they tie the modules together just the same:
// a route file that needs `App` from app.ts, which imports every route, cannot
// be read, compiled or moved apart from all the others. Dynamic `import()`
// counts too: it is the usual way such a cycle is hidden.
const root = packageRoot();
const sourceDirs = ['agent', 'aggregator', 'common', 'proto', 'examples', 'bench'];

/** Every .ts file under dir, as paths relative to the package root with '/' separators. */
function tsFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : tsFiles(rel);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [rel] : [];
  });
}

/** Every module specifier a file names: static imports and re-exports, dynamic import(), import('...') types. */
function specifiers(fileName: string, text: string): string[] {
  const file = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined) {
      if (ts.isStringLiteral(node.moduleSpecifier)) found.push(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const e = node.moduleReference.expression;
      if (ts.isStringLiteral(e)) found.push(e.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg !== undefined && ts.isStringLiteralLike(arg)) found.push(arg.text);
    } else if (ts.isImportTypeNode(node)) {
      const lit = node.argument;
      if (ts.isLiteralTypeNode(lit) && ts.isStringLiteral(lit.literal)) found.push(lit.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

/** A relative specifier resolved to a source file in the set, the way NodeNext maps './x.js' to './x.ts'. */
function resolve(from: string, spec: string, files: Set<string>): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = relative(root, join(root, dirname(from), spec))
    .split(sep)
    .join('/');
  const candidates = [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, `${base}/index.ts`];
  return candidates.find((c) => files.has(c));
}

/** Strongly connected components with more than one module, or a module importing itself (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let next = 0;
  const connect = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(component.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v);
  return out;
}

/** One concrete loop through a component, to name in the failure: a → b → … → a. */
function loopThrough(component: string[], graph: Map<string, string[]>): string[] {
  const members = new Set(component);
  const start = component[0] as string;
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift() as string;
    for (const w of graph.get(v) ?? []) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [v];
        while (path[0] !== start) path.unshift(previous.get(path[0] as string) as string);
        return [...path, start];
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return component;
}

function importGraph(): Map<string, string[]> {
  const files = new Set(sourceDirs.flatMap(tsFiles));
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const targets = specifiers(f, readFileSync(join(root, f), 'utf8'))
      .map((s) => resolve(f, s, files))
      .filter((r): r is string => r !== undefined);
    graph.set(f, [...new Set(targets)].sort());
  }
  return graph;
}

t.test('the reader sees every kind of import, type-only and dynamic included', async (t) => {
  const text = [
    "import { a } from './a.js';",
    "import type { B } from './b.js';",
    "export { c } from './c.js';",
    "export type { D } from './d.js';",
    "export * from './e.js';",
    "type F = import('./f.js').F;",
    "const g = await import('./g.js');",
    "// import { h } from './h.js';",
    'const s = "import { i } from \'./i.js\'";',
  ].join('\n');
  t.same(specifiers('x.ts', text), ['./a.js', './b.js', './c.js', './d.js', './e.js', './f.js', './g.js']);
});

t.test('a cycle is found whatever its length, and a chain is not a cycle', async (t) => {
  const g = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a', 'd']],
    ['d', []],
    ['e', ['e']],
  ]);
  t.same(cycles(g), [['a', 'b', 'c'], ['e']]);
  t.same(
    cycles(
      new Map([
        ['a', ['b']],
        ['b', ['c']],
        ['c', []],
      ]),
    ),
    [],
  );
});

t.test('no module imports itself, directly or through others (type-only imports included)', async (t) => {
  const graph = importGraph();
  t.ok(graph.size > 50, `read the source tree (${graph.size} modules)`);
  t.ok(graph.has('agent/cli.ts') && graph.has('aggregator/http/app.ts'), 'the graph holds the entry points');
  const found = cycles(graph);
  for (const component of found) {
    const members = new Set(component);
    const edges = component.flatMap((from) =>
      (graph.get(from) ?? []).filter((to) => members.has(to)).map((to) => `${from} → ${to}`),
    );
    t.fail(
      `import cycle: ${loopThrough(component, graph).join(' → ')}; its ${component.length} modules import each other by ${edges.join(', ')}`,
    );
  }
  t.equal(found.length, 0, 'the source has no import cycles');
});
