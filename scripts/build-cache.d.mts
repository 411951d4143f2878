// Types of scripts/build-cache.mjs.
export interface CacheIdentity {
  compiler: string;
  runtime: Record<string, string>;
}
export declare function normalizeRunFlags(flags: string[]): string | null;
export declare function cacheDir(): string;
export declare function cacheEnabled(): boolean;
export declare function runtimeInputs(flags: string): string[];
export declare function identity(usesBundle: boolean): CacheIdentity;
export declare function cacheKey(input: { sourcePath: string; source: Uint8Array; flags: string; identity: CacheIdentity }): string;
export declare function lookup(key: string): string | null;
export declare function store(key: string, exe: string, imports?: { path: string; text: string }[]): string | null;
export declare function exists(path: string): boolean;
export declare function parseRunCommand(argv: string[]): { file: string; flags: string; verbose: boolean; programArgs: string[] } | null;
export declare function runExecutable(exe: string, args?: string[]): Promise<number>;
