/**
 * The generated-code benchmark programs of `npm run bench:lang`: each is an Osprey program and the
 * same algorithm written naturally in C, both parameterised by a problem size so that the
 * benchmark runs them large and the golden corpus (tests/programs/bench/, written by
 * `npx tsx scripts/bench/lang-programs.ts --write-golden`) runs them small, at -O0 and -O2.
 * Both sides print their result; the benchmark stops when they differ.
 */

export interface BenchProgram {
  /** Table label (uses the benchmark size). */
  name: string;
  /** File stem of the golden copy. */
  slug: string;
  /** Problem size for the benchmark and for the golden test. */
  benchSize: number;
  goldenSize: number;
  osprey(n: number): string;
  c(n: number): string;
}

const C_HEAD = '#include <stdio.h>\n#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n';

export const BENCH_PROGRAMS: BenchProgram[] = [
  {
    name: 'recursive fib(35)',
    slug: 'fib',
    benchSize: 35,
    goldenSize: 20,
    osprey: (n) => `fn fib(n: Int) -> Int = match n < 2 {
    true => n
    false => fib(n - 1) + fib(n - 2)
}
print(fib(${n}))
`,
    c: (n) => `${C_HEAD}
static int64_t fib(int64_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
int main(void) { printf("%lld\\n", (long long)fib(${n})); return 0; }
`,
  },
  {
    name: 'fold over 10,000,000 integers',
    slug: 'fold_sum',
    benchSize: 10_000_000,
    goldenSize: 1000,
    osprey: (n) => `print(fold(range(0, ${n}), 0, fn(acc: Int, x: Int) -> Int => acc + x % 7))
`,
    c: (n) => `${C_HEAD}
int main(void) {
    int64_t acc = 0;
    for (int64_t x = 0; x < ${n}; x++) acc = acc + x % 7;
    printf("%lld\\n", (long long)acc);
    return 0;
}
`,
  },
  {
    name: 'building 2,000,000 short strings',
    slug: 'string_concat',
    benchSize: 2_000_000,
    goldenSize: 1000,
    osprey: (n) => `fn step(acc: Int, i: Int) -> Int {
    let s = "key-" + toString(i) + ":" + toString(acc % 1000)
    match s == "key-7:7" {
        true => acc + 1
        false => acc + i % 5
    }
}
print(fold(range(0, ${n}), 0, step))
`,
    c: (n) => `${C_HEAD}
int main(void) {
    int64_t acc = 0;
    char s[64];
    for (int64_t i = 0; i < ${n}; i++) {
        snprintf(s, sizeof s, "key-%lld:%lld", (long long)i, (long long)(acc % 1000));
        acc = strcmp(s, "key-7:7") == 0 ? acc + 1 : acc + i % 5;
    }
    printf("%lld\\n", (long long)acc);
    return 0;
}
`,
  },
  {
    name: 'string interpolation, 1,000,000 lines',
    slug: 'string_interp',
    benchSize: 1_000_000,
    goldenSize: 1000,
    osprey: (n) => `fn step(acc: Int, i: Int) -> Int {
    let line = "item \${i}: \${acc % 97} of \${i % 13}"
    match length(line) {
        Success { value } => acc + value
        Error { message } => acc
    }
}
print(fold(range(0, ${n}), 0, step))
`,
    c: (n) => `${C_HEAD}
int main(void) {
    int64_t acc = 0;
    char line[96];
    for (int64_t i = 0; i < ${n}; i++) {
        snprintf(line, sizeof line, "item %lld: %lld of %lld", (long long)i, (long long)(acc % 97), (long long)(i % 13));
        acc += (int64_t)strlen(line);
    }
    printf("%lld\\n", (long long)acc);
    return 0;
}
`,
  },
  {
    name: 'Ackermann(3, 10)',
    slug: 'ackermann',
    benchSize: 10,
    goldenSize: 4,
    osprey: (n) => `fn ack(m: Int, n: Int) -> Int = match m == 0 {
    true => n + 1
    false => match n == 0 {
        true => ack(m: m - 1, n: 1)
        false => ack(m: m - 1, n: ack(m: m, n: n - 1))
    }
}
print(ack(m: 3, n: ${n}))
`,
    c: (n) => `${C_HEAD}
static int64_t ack(int64_t m, int64_t n) {
    if (m == 0) return n + 1;
    if (n == 0) return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}
int main(void) { printf("%lld\\n", (long long)ack(3, ${n})); return 0; }
`,
  },
  {
    name: 'Towers of Hanoi, 24 discs',
    slug: 'hanoi',
    benchSize: 24,
    goldenSize: 10,
    osprey: (n) => `fn hanoi(n: Int, from: Int, to: Int, via: Int) -> Int = match n == 0 {
    true => 0
    false => hanoi(n: n - 1, from: from, to: via, via: to) + (from * 3 + to) % 7 + hanoi(n: n - 1, from: via, to: to, via: from)
}
print(hanoi(n: ${n}, from: 1, to: 3, via: 2))
`,
    c: (n) => `${C_HEAD}
static int64_t hanoi(int64_t n, int64_t from, int64_t to, int64_t via) {
    if (n == 0) return 0;
    return hanoi(n - 1, from, via, to) + (from * 3 + to) % 7 + hanoi(n - 1, via, to, from);
}
int main(void) { printf("%lld\\n", (long long)hanoi(${n}, 1, 3, 2)); return 0; }
`,
  },
  {
    name: 'binary trees, 20 × depth 16',
    slug: 'binary_tree',
    benchSize: 16,
    goldenSize: 6,
    osprey: (n) => `type Tree = Leaf | Node { left: Tree, right: Tree }
fn make(depth: Int) -> Tree = match depth == 0 {
    true => Leaf
    false => Node { left: make(depth - 1), right: make(depth - 1) }
}
fn count(t: Tree) -> Int = match t {
    Leaf => 1
    Node { left, right } => count(left) + count(right) + 1
}
fn rounds(i: Int, acc: Int) -> Int = match i == 0 {
    true => acc
    false => rounds(i: i - 1, acc: acc + count(make(${n})))
}
print(rounds(i: 20, acc: 0))
`,
    c: (n) => `${C_HEAD}
typedef struct Tree { struct Tree *left, *right; } Tree;
static Tree *make(int64_t depth) {
    if (depth == 0) return NULL;
    Tree *t = malloc(sizeof *t);
    if (!t) abort();
    t->left = make(depth - 1);
    t->right = make(depth - 1);
    return t;
}
static int64_t count(const Tree *t) { return t ? count(t->left) + count(t->right) + 1 : 1; }
static void release(Tree *t) { if (t) { release(t->left); release(t->right); free(t); } }
int main(void) {
    int64_t acc = 0;
    for (int i = 0; i < 20; i++) { Tree *t = make(${n}); acc += count(t); release(t); }
    printf("%lld\\n", (long long)acc);
    return 0;
}
`,
  },
  {
    name: 'closures, 10,000,000 made and called',
    slug: 'closures',
    benchSize: 10_000_000,
    goldenSize: 1000,
    osprey: (n) => `fn makeAdder(k: Int) -> (Int) -> Int = fn(x: Int) -> Int => x + k
fn apply(f: (Int) -> Int, v: Int) -> Int = f(v)
fn step(acc: Int, i: Int) -> Int = apply(f: makeAdder(i % 10), v: acc) % 1000003
print(fold(range(0, ${n}), 0, step))
`,
    c: (n) => `${C_HEAD}
typedef struct Adder { int64_t (*call)(const struct Adder *, int64_t); int64_t k; } Adder;
static int64_t add_k(const Adder *self, int64_t x) { return x + self->k; }
static Adder make_adder(int64_t k) { Adder a = {add_k, k}; return a; }
static int64_t apply(const Adder *f, int64_t v) { return f->call(f, v); }
int main(void) {
    int64_t acc = 0;
    for (int64_t i = 0; i < ${n}; i++) {
        Adder f = make_adder(i % 10);
        acc = apply(&f, acc) % 1000003;
    }
    printf("%lld\\n", (long long)acc);
    return 0;
}
`,
  },
  {
    name: 'list processing, 20 × 100,000 cells',
    slug: 'list_processing',
    benchSize: 100_000,
    goldenSize: 100,
    osprey: (n) => `type IntList = Nil | Cons { head: Int, tail: IntList }
fn build(n: Int, acc: IntList) -> IntList = match n == 0 {
    true => acc
    false => build(n: n - 1, acc: Cons { head: n, tail: acc })
}
fn squares(l: IntList) -> IntList = match l {
    Nil => Nil
    Cons { head, tail } => Cons { head: head * head % 1000, tail: squares(tail) }
}
fn sumEven(l: IntList, acc: Int) -> Int = match l {
    Nil => acc
    Cons { head, tail } => match head % 2 == 0 {
        true => sumEven(l: tail, acc: acc + head)
        false => sumEven(l: tail, acc: acc)
    }
}
fn rounds(i: Int, acc: Int) -> Int = match i == 0 {
    true => acc
    false => rounds(i: i - 1, acc: acc + sumEven(l: squares(build(n: ${n}, acc: Nil)), acc: 0))
}
print(rounds(i: 20, acc: 0))
`,
    c: (n) => `${C_HEAD}
typedef struct Cell { int64_t head; struct Cell *tail; } Cell;
static Cell *cons(int64_t head, Cell *tail) {
    Cell *c = malloc(sizeof *c);
    if (!c) abort();
    c->head = head;
    c->tail = tail;
    return c;
}
static Cell *build(int64_t n, Cell *acc) { for (; n > 0; n--) acc = cons(n, acc); return acc; }
static Cell *squares(const Cell *l) { return l ? cons(l->head * l->head % 1000, squares(l->tail)) : NULL; }
static int64_t sum_even(const Cell *l) { int64_t acc = 0; for (; l; l = l->tail) if (l->head % 2 == 0) acc += l->head; return acc; }
static void release(Cell *l) { while (l) { Cell *next = l->tail; free(l); l = next; } }
int main(void) {
    int64_t acc = 0;
    for (int i = 0; i < 20; i++) {
        Cell *l = build(${n}, NULL);
        Cell *s = squares(l);
        acc += sum_even(s);
        release(l);
        release(s);
    }
    printf("%lld\\n", (long long)acc);
    return 0;
}
`,
  },
  {
    name: 'Collatz, longest chain below 300,000',
    slug: 'collatz',
    benchSize: 300_000,
    goldenSize: 1000,
    osprey: (n) => `fn steps(n: Int, acc: Int) -> Int = match n == 1 {
    true => acc
    false => match n % 2 == 0 {
        true => steps(n: n / 2, acc: acc + 1)
        false => steps(n: 3 * n + 1, acc: acc + 1)
    }
}
fn best(i: Int, limit: Int, top: Int) -> Int = match i == limit {
    true => top
    false => {
        let s = steps(n: i, acc: 0)
        match s > top {
            true => best(i: i + 1, limit: limit, top: s)
            false => best(i: i + 1, limit: limit, top: top)
        }
    }
}
print(best(i: 1, limit: ${n}, top: 0))
`,
    c: (n) => `${C_HEAD}
static int64_t steps(int64_t n) { int64_t acc = 0; while (n != 1) { n = n % 2 == 0 ? n / 2 : 3 * n + 1; acc++; } return acc; }
int main(void) {
    int64_t top = 0;
    for (int64_t i = 1; i < ${n}; i++) { int64_t s = steps(i); if (s > top) top = s; }
    printf("%lld\\n", (long long)top);
    return 0;
}
`,
  },
  {
    name: 'Euclid gcd, 3,000,000 pairs',
    slug: 'gcd',
    benchSize: 3_000_000,
    goldenSize: 1000,
    osprey: (n) => `fn gcd(a: Int, b: Int) -> Int = match b == 0 {
    true => a
    false => gcd(a: b, b: a % b)
}
print(fold(range(1, ${n}), 0, fn(acc: Int, i: Int) -> Int => acc + gcd(a: i, b: 1000000007 % i + 12345)))
`,
    c: (n) => `${C_HEAD}
static int64_t gcd(int64_t a, int64_t b) { while (b != 0) { int64_t t = a % b; a = b; b = t; } return a; }
int main(void) {
    int64_t acc = 0;
    for (int64_t i = 1; i < ${n}; i++) acc += gcd(i, 1000000007 % i + 12345);
    printf("%lld\\n", (long long)acc);
    return 0;
}
`,
  },
  {
    name: 'expression tree evaluation (union match), 40 × depth 20',
    slug: 'expr_eval',
    benchSize: 20,
    goldenSize: 8,
    osprey: (n) => `type Expr = Num { value: Int } | Add { left: Expr, right: Expr } | Mul { left: Expr, right: Expr } | Neg { inner: Expr }
fn eval(e: Expr) -> Int = match e {
    Num { value } => value
    Add { left, right } => (eval(left) + eval(right)) % 1000002 + 1
    Mul { left, right } => eval(left) * eval(right) % 1000003
    Neg { inner } => 1000003 - eval(inner)
}
fn build(depth: Int, seed: Int) -> Expr = match depth == 0 {
    true => Num { value: seed % 10 + 1 }
    false => match seed % 3 {
        0 => Add { left: build(depth: depth - 1, seed: seed * 7 % 1000 + 1), right: build(depth: depth - 1, seed: seed * 5 % 1000 + 2) }
        1 => Mul { left: build(depth: depth - 1, seed: seed * 3 % 1000 + 1), right: build(depth: depth - 1, seed: seed + 4) }
        _ => Neg { inner: build(depth: depth - 1, seed: seed * 11 % 1000 + 3) }
    }
}
let tree = build(depth: ${n}, seed: 1)
print(fold(range(0, 40), 0, fn(acc: Int, i: Int) -> Int => (acc + eval(tree)) % 1000003))
`,
    c: (n) => `${C_HEAD}
typedef enum { NUM, ADD, MUL, NEG } Kind;
typedef struct Expr { Kind kind; int64_t value; struct Expr *left, *right; } Expr;
static Expr *node(Kind kind, int64_t value, Expr *left, Expr *right) {
    Expr *e = malloc(sizeof *e);
    if (!e) abort();
    e->kind = kind; e->value = value; e->left = left; e->right = right;
    return e;
}
static int64_t eval(const Expr *e) {
    switch (e->kind) {
    case NUM: return e->value;
    case ADD: return (eval(e->left) + eval(e->right)) % 1000002 + 1;
    case MUL: return eval(e->left) * eval(e->right) % 1000003;
    default: return 1000003 - eval(e->left);
    }
}
static Expr *build(int64_t depth, int64_t seed) {
    if (depth == 0) return node(NUM, seed % 10 + 1, NULL, NULL);
    switch (seed % 3) {
    case 0: { Expr *l = build(depth - 1, seed * 7 % 1000 + 1); return node(ADD, 0, l, build(depth - 1, seed * 5 % 1000 + 2)); }
    case 1: { Expr *l = build(depth - 1, seed * 3 % 1000 + 1); return node(MUL, 0, l, build(depth - 1, seed + 4)); }
    default: return node(NEG, 0, build(depth - 1, seed * 11 % 1000 + 3), NULL);
    }
}
int main(void) {
    Expr *tree = build(${n}, 1);
    int64_t acc = 0;
    for (int i = 0; i < 40; i++) acc = (acc + eval(tree)) % 1000003;
    printf("%lld\\n", (long long)acc);
    return 0;
}
`,
  },
];

/** `--write-golden`: writes tests/programs/bench/<slug>.osp at the golden size, with the expected
 *  output taken from the C version (compiled with gcc and run). */
async function writeGolden(): Promise<void> {
  const { spawnSync } = await import('node:child_process');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { compileC, removeDir, ROOT, tempDir } = await import('./lang-common.ts');
  const outDir = join(ROOT, 'tests', 'programs', 'bench');
  mkdirSync(outDir, { recursive: true });
  const dir = tempDir('osprey-bench-golden-');
  try {
    for (const p of BENCH_PROGRAMS) {
      const exe = join(dir, p.slug);
      compileC(p.c(p.goldenSize), dir, exe);
      const r = spawnSync(exe, [], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${p.slug}: the C version failed`);
      const expect = r.stdout.trimEnd().split('\n').map((l) => `// expect: ${l}`).join('\n');
      const header = `// The "${p.name}" program of npm run bench:lang (scripts/bench/lang-programs.ts) at a small size;\n// the expected output is what the C version prints.\n`;
      writeFileSync(join(outDir, `${p.slug}.osp`), `${header}${expect}\n${p.osprey(p.goldenSize)}`);
    }
  } finally {
    removeDir(dir);
  }
}

if (process.argv[1] && import.meta.url === `file://${process.argv[1]}` && process.argv.includes('--write-golden')) await writeGolden();
