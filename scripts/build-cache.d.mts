// Types of scripts/build-cache.mjs.
export declare function normalizeRunFlags(flags: string[]): string | null;
export declare function cacheDir(): string;
export declare function cacheEnabled(): boolean;
export declare function cacheKey(input: { sourcePath: string; sourceText: string; flags: string; compilerId: string }): string;
export declare function lookup(key: string): string | null;
export declare function store(key: string, exe: string): string | null;
export declare function exists(path: string): boolean;
export declare function parseRunCommand(argv: string[]): { file: string; flags: string; verbose: boolean } | null;
export declare function runExecutable(exe: string): Promise<number>;
