/**
 * `npm run bench:print-pipe [-- --lines N --rounds R]`: a million `print`s into a pipe, Osprey
 * against C's printf, side by side, interleaved, in one run.
 *
 * The Osprey program prints "line <i>" for i in [0, N) with `forEach(range(…))` and string
 * interpolation; the C program does the same with printf("line %d\n"), built with gcc -O2. A third
 * program, C with stdout line-buffered (setvbuf _IOLBF), is what Osprey used to do (one write per
 * line) and shows what the block buffering saves. Each round runs the three in turn with stdout a
 * pipe read by this process (which counts bytes and checks the last line, so a program that loses
 * output fails the run); the figures are medians of the rounds, CPU time (user + system) of the
 * program from rusage, and wall time. The ratio printed is Osprey ÷ C (target: at most 2).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { compileC, compileOsprey, median, removeDir, tempDir } from './lang-common.ts';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} needs a positive integer`);
  return v;
}

const LINES = option('lines', 1_000_000);
const ROUNDS = option('rounds', 5);

const OSPREY = `forEach(range(0, ${LINES}), |i| => print("line \${i}"))\n`;
const C_FULL = `#include <stdio.h>
int main(void) {
    for (int i = 0; i < ${LINES}; i++) printf("line %d\\n", i);
    return 0;
}
`;
const C_LINE = `#include <stdio.h>
int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < ${LINES}; i++) printf("line %d\\n", i);
    return 0;
}
`;

/** The rusage wrapper: runs argv[2…] and writes "user_us sys_us" to argv[1]. */
const MEASURE_C = `#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    pid_t pid = fork();
    if (pid == 0) { execvp(argv[2], argv + 2); _exit(127); }
    int status; struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) return 2;
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    fprintf(f, "%lld %lld\\n", (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
            (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
    fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
`;

interface Sample {
  cpuMs: number;
  wallMs: number;
}

const expectedBytes = (() => {
  let n = 0;
  for (let i = 0; i < LINES; i++) n += `line ${i}\n`.length;
  return n;
})();
const lastLine = `line ${LINES - 1}\n`;

/** Runs `exe` with stdout a pipe into this process; checks every byte arrived. */
function runIntoPipe(measure: string, exe: string, dir: string): Promise<Sample> {
  const out = join(dir, 'rusage');
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(measure, [out, exe], { stdio: ['ignore', 'pipe', 'inherit'] });
    let bytes = 0;
    let tail = '';
    child.stdout.on('data', (d: Buffer) => {
      bytes += d.length;
      tail = (tail + d.toString('latin1')).slice(-64);
    });
    child.on('error', reject);
    child.on('close', (status) => {
      const wallMs = performance.now() - start;
      if (status !== 0) return reject(new Error(`${exe} exited with ${status}`));
      if (bytes !== expectedBytes || !tail.endsWith(lastLine)) {
        return reject(new Error(`${exe} wrote ${bytes} bytes ending ${JSON.stringify(tail)}; expected ${expectedBytes} ending ${JSON.stringify(lastLine)}`));
      }
      const [u, s] = readFileSync(out, 'utf8').trim().split(' ').map(Number);
      rmSync(out, { force: true });
      resolve({ cpuMs: (u! + s!) / 1000, wallMs });
    });
  });
}

async function main(): Promise<void> {
  const dir = tempDir('osprey-print-bench-');
  try {
    const measure = join(dir, 'measure');
    compileC(MEASURE_C, dir, measure);
    const programs: [string, string][] = [
      ['osprey', join(dir, 'osprey-print')],
      ['C printf', join(dir, 'c-printf')],
      ['C printf, line-buffered', join(dir, 'c-printf-line')],
    ];
    await compileOsprey(OSPREY, programs[0]![1], 'release');
    compileC(C_FULL, dir, programs[1]![1]);
    compileC(C_LINE, dir, programs[2]![1]);
    const samples = new Map<string, Sample[]>(programs.map(([name]) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // Interleaved, and the order rotates so that no program always runs first.
      for (let k = 0; k < programs.length; k++) {
        const [name, exe] = programs[(round + k) % programs.length]!;
        samples.get(name)!.push(await runIntoPipe(measure, exe, dir));
      }
    }
    const med = (name: string, key: keyof Sample) => median(samples.get(name)!.map((s) => s[key]));
    console.log(`${LINES.toLocaleString('en-US')} lines into a pipe, medians of ${ROUNDS} interleaved rounds`);
    console.log('program                      CPU ms   wall ms');
    for (const [name] of programs) console.log(`${name.padEnd(26)} ${med(name, 'cpuMs').toFixed(0).padStart(8)} ${med(name, 'wallMs').toFixed(0).padStart(9)}`);
    const cpuRatio = med('osprey', 'cpuMs') / med('C printf', 'cpuMs');
    const wallRatio = med('osprey', 'wallMs') / med('C printf', 'wallMs');
    console.log(`osprey ÷ C printf: ${cpuRatio.toFixed(2)}× CPU, ${wallRatio.toFixed(2)}× wall (target ≤ 2×)`);
    console.log(`C line-buffered ÷ C printf: ${(med('C printf, line-buffered', 'cpuMs') / med('C printf', 'cpuMs')).toFixed(2)}× CPU (what one write per line costs)`);
  } finally {
    removeDir(dir);
  }
}

await main();
