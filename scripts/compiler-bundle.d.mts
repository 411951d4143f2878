// Types of scripts/compiler-bundle.mjs.
export declare const ROOT: string;
export declare const BUNDLE_DIR: string;
export declare const BUNDLE: string;
export declare const SOURCE_DIRS: string[];
export declare const SOURCE_FILES: string[];
export declare function bundleIsFresh(): boolean;
export declare function compilerIdentity(usesBundle: boolean): string;
