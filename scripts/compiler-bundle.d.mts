// Types of scripts/compiler-bundle.mjs.
export declare const ROOT: string;
export declare const BUNDLE_DIR: string;
export declare const BUNDLE: string;
export declare const SERVER_BUNDLE: string;
export declare const IDENTITY_STAMP: string;
export declare const SOURCE_DIRS: string[];
export declare const SOURCE_FILES: string[];
export declare const RUNTIME_FILES: Record<'release' | 'asan' | 'inline', string>;
export declare function bundleIsFresh(): boolean;
export declare function compilerIdentity(usesBundle: boolean): string;
export declare function stampedIdentity(flagTable?: { flags: Record<string, string>; neutral: string[] }): { compiler: string; runtime: Record<string, string> } | null;
