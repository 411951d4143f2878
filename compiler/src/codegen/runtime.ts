// Pipeline position: codegen support. LLVM declarations of the C runtime, generated from the one
// ABI table in runtime-bindings/abi.ts (never written by hand). tests/abi/declarations.test.ts
// compares renderRuntimeDeclarations() with what clang-14 makes of the generated C header.

import { HANDLERS, RUNTIME_FUNCTIONS, type CType, type RuntimeFunction } from '../../../runtime-bindings/abi.ts';
import { IrModule, type Fn, type FnType, type Type } from './llvm.ts';

/** The LLVM type of a C-level ABI type. */
export function cTypeToLlvm(ir: IrModule, t: CType): Type {
  switch (t) {
    case 'void':
      return ir.void();
    case 'int64':
      return ir.i64();
    case 'int32':
      return ir.i32();
    case 'cstring':
    case 'ptr':
      return ir.i8ptr();
    case 'result':
      return ir.result();
    default: {
      const h = HANDLERS[t.slice('handler:'.length) as keyof typeof HANDLERS];
      return ir.ptrTo(ir.fnType(cTypeToLlvm(ir, h.returns), h.params.map((p) => cTypeToLlvm(ir, p.type))));
    }
  }
}

export function runtimeFnType(ir: IrModule, f: RuntimeFunction): FnType {
  return ir.fnType(cTypeToLlvm(ir, f.returns), f.params.map((p) => cTypeToLlvm(ir, p.type)));
}

/** Declares every runtime function in the module; symbol → function. */
export function declareRuntime(ir: IrModule): Map<string, Fn> {
  const out = new Map<string, Fn>();
  for (const f of RUNTIME_FUNCTIONS) out.set(f.symbol, ir.declareExternal(f.symbol, runtimeFnType(ir, f)));
  return out;
}

/** Textual IR of a module holding exactly the compiler's runtime declarations. */
export function renderRuntimeDeclarations(): string {
  const ir = new IrModule('osprey_runtime_declarations');
  declareRuntime(ir);
  ir.verify();
  return ir.print();
}
