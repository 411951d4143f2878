// Pipeline position: the back end's foundation. The ONLY module that imports llvm-bindings; every
// workaround for an llvm-bindings 0.4.2 defect lives here:
//   1. integer constants never go through getInt64 (it truncates through a C++ unsigned);
//   2. the data layout is set by string (createDataLayout returns a dangling pointer);
//   3. only methods the .d.ts declares on each class are called (inherited ones throw);
//   4. CreateGlobalStringPtr always gets the module (it segfaults without an insertion point);
//      constant Strings, which need a length header, are built as globals by hand (ostring);
//   5. verifyModule returns TRUE when the module is broken: every module is verified, and a
//      failure becomes an internal compiler error.

import llvm from 'llvm-bindings';
import { ice } from '../diagnostics/diagnostic.ts';

export type Value = llvm.Value;
export type Type = llvm.Type;
export type Fn = llvm.Function;
export type FnType = llvm.FunctionType;
export type Block = llvm.BasicBlock;
export type PhiNode = llvm.PHINode;

export const DATA_LAYOUT = 'e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-f80:128-n8:16:32:64-S128';
export const TARGET_TRIPLE = 'x86_64-pc-linux-gnu';

export type IntPredicate = 'eq' | 'ne' | 'slt' | 'sgt' | 'sle' | 'sge';

export class IrModule {
  private readonly ctx = new llvm.LLVMContext();
  readonly mod: llvm.Module;
  private readonly b: llvm.IRBuilder;
  private resultStruct: llvm.StructType | null = null;
  private strings = new Map<string, Value>();
  private texts = new Map<string, Value>();

  constructor(name: string) {
    this.mod = new llvm.Module(name, this.ctx);
    this.mod.setDataLayout(DATA_LAYOUT);
    this.mod.setTargetTriple(TARGET_TRIPLE);
    this.b = new llvm.IRBuilder(this.ctx);
  }

  // ---- types ---------------------------------------------------------------------------------

  i1(): Type {
    return this.b.getInt1Ty();
  }
  i32(): Type {
    return this.b.getInt32Ty();
  }
  i64(): Type {
    return this.b.getInt64Ty();
  }
  i8ptr(): Type {
    return this.b.getInt8PtrTy();
  }
  void(): Type {
    return this.b.getVoidTy();
  }
  /** The named struct %OspResult = { i64 tag, i64 value } (runtime-bindings RESULT_STRUCT). */
  result(name = 'OspResult'): Type {
    if (!this.resultStruct) this.resultStruct = llvm.StructType.create(this.ctx, [this.i64(), this.i64()], name);
    return this.resultStruct;
  }
  /** A closure { i8* fn, i8* env } (a literal struct, passed in registers inside compiled code). */
  closure(): Type {
    return llvm.StructType.get(this.ctx, [this.i8ptr(), this.i8ptr()]);
  }
  arrayOf(element: Type, length: number): Type {
    return llvm.ArrayType.get(element, length);
  }
  fnType(ret: Type, params: Type[]): FnType {
    return llvm.FunctionType.get(ret, params, false);
  }
  ptrTo(t: Type): Type {
    return llvm.PointerType.getUnqual(t);
  }

  // ---- constants -----------------------------------------------------------------------------

  /** An exact 64-bit constant for any bigint in [-2^63, 2^64) (workaround 1). */
  constI64(n: bigint): Value {
    const v = BigInt.asIntN(64, n);
    if (v >= -(2n ** 53n) && v <= 2n ** 53n) return llvm.ConstantInt.get(this.b.getInt64Ty(), Number(v), true);
    const u = BigInt.asUintN(64, v);
    const hi = llvm.ConstantInt.get(this.b.getInt64Ty(), Number(u >> 32n), false);
    const lo = llvm.ConstantInt.get(this.b.getInt64Ty(), Number(u & 0xffffffffn), false);
    // Constant operands fold to a single ConstantInt.
    return this.b.CreateOr(this.b.CreateShl(hi, this.b.getIntN(64, 32)), lo);
  }
  constI32(n: number): Value {
    return this.b.getIntN(32, n);
  }
  constBool(v: boolean): Value {
    return v ? this.b.getTrue() : this.b.getFalse();
  }
  nullPtr(): Value {
    return llvm.ConstantPointerNull.get(llvm.PointerType.getUnqual(this.b.getInt8Ty()));
  }
  undef(t: Type): Value {
    return llvm.UndefValue.get(t);
  }
  /** A constant String, shared per distinct text: a private global `{ i64 length, [length+1 x i8] }`
   *  (the UTF-8 bytes, NUL bytes included, then a terminating NUL) and the value is the address
   *  of its first byte, so the length sits in the 8 bytes before it (runtime-bindings/abi.ts,
   *  STRING_LAYOUT). The GEP on constants folds to a constant expression, so no insertion point
   *  is needed (unlike CreateGlobalStringPtr, workaround 4). */
  ostring(s: string): Value {
    let v = this.strings.get(s);
    if (!v) {
      const bytes = llvm.ConstantDataArray.getString(this.ctx, s, true);
      const layout = llvm.StructType.get(this.ctx, [this.i64(), bytes.getType()]);
      const init = llvm.ConstantStruct.get(layout, [this.constI64(BigInt(Buffer.byteLength(s, 'utf8'))) as llvm.Constant, bytes]);
      const g = new llvm.GlobalVariable(this.mod, layout, true, llvm.GlobalValue.LinkageTypes.PrivateLinkage, init, `str.${this.strings.size}`);
      v = this.b.CreateInBoundsGEP(layout, g, [this.b.getInt32(0), this.b.getInt32(1), this.b.getInt32(0)]);
      this.strings.set(s, v);
    }
    return v;
  }
  /** Plain NUL-terminated C text (no length header), shared per distinct text: for what only C
   *  reads as text, such as the message and location of osp_rt_fail. One bindings call instead of
   *  the seven a String literal costs (a division's location is one per `/` and `%`). */
  ctext(s: string): Value {
    let v = this.texts.get(s);
    if (!v) {
      v = this.b.CreateGlobalStringPtr(s, `text.${this.texts.size}`, 0, this.mod);
      this.texts.set(s, v);
    }
    return v;
  }
  /** A read-only global array of 64-bit words (each exact up to 2^53), as an i8*: one bindings
   *  call for the whole array, where building it element by element costs one per word. */
  constWords(values: number[]): Value {
    const init = llvm.ConstantDataArray.get(this.ctx, values);
    const g = new llvm.GlobalVariable(this.mod, init.getType(), true, llvm.GlobalValue.LinkageTypes.InternalLinkage, init, 'words');
    return llvm.ConstantExpr.getBitCast(g, this.i8ptr());
  }
  fnAsI8Ptr(fn: Fn): Value {
    return llvm.ConstantExpr.getBitCast(fn, this.i8ptr());
  }

  // ---- functions, globals, blocks ------------------------------------------------------------

  // Nothing in an Osprey program unwinds (the language has no exceptions; the runtime and
  // `extern fn`s are C), so every function is nounwind: the optimiser need not keep unwind paths.
  declareExternal(name: string, type: FnType): Fn {
    const existing = this.mod.getFunction(name);
    if (existing) return existing;
    const fn = llvm.Function.Create(type, llvm.Function.LinkageTypes.ExternalLinkage, name, this.mod);
    fn.setDoesNotThrow();
    return fn;
  }
  defineFunction(name: string, type: FnType, exported: boolean): Fn {
    const linkage = exported ? llvm.Function.LinkageTypes.ExternalLinkage : llvm.Function.LinkageTypes.InternalLinkage;
    const fn = llvm.Function.Create(type, linkage, name, this.mod);
    fn.setDoesNotThrow();
    return fn;
  }
  arg(fn: Fn, i: number): Value {
    return fn.getArg(i);
  }
  /** A zero-initialised internal global. */
  global(name: string, type: Type): Value {
    return new llvm.GlobalVariable(this.mod, type, false, llvm.GlobalValue.LinkageTypes.InternalLinkage, llvm.Constant.getNullValue(type), name);
  }
  block(fn: Fn, name: string): Block {
    return llvm.BasicBlock.Create(this.ctx, name, fn);
  }
  setInsertPoint(bb: Block): void {
    this.b.SetInsertPoint(bb);
  }
  currentBlock(): Block {
    return this.b.GetInsertBlock()!;
  }

  // ---- instructions --------------------------------------------------------------------------

  add(a: Value, c: Value): Value { return this.b.CreateAdd(a, c); }
  sub(a: Value, c: Value): Value { return this.b.CreateSub(a, c); }
  mul(a: Value, c: Value): Value { return this.b.CreateMul(a, c); }
  sdiv(a: Value, c: Value): Value { return this.b.CreateSDiv(a, c); }
  srem(a: Value, c: Value): Value { return this.b.CreateSRem(a, c); }
  neg(a: Value): Value { return this.b.CreateNeg(a); }
  not(a: Value): Value { return this.b.CreateNot(a); }
  icmp(p: IntPredicate, a: Value, c: Value): Value {
    switch (p) {
      case 'eq': return this.b.CreateICmpEQ(a, c);
      case 'ne': return this.b.CreateICmpNE(a, c);
      case 'slt': return this.b.CreateICmpSLT(a, c);
      case 'sgt': return this.b.CreateICmpSGT(a, c);
      case 'sle': return this.b.CreateICmpSLE(a, c);
      case 'sge': return this.b.CreateICmpSGE(a, c);
    }
  }
  select(c: Value, a: Value, d: Value): Value { return this.b.CreateSelect(c, a, d); }
  zext(v: Value, t: Type): Value { return this.b.CreateZExt(v, t); }
  trunc(v: Value, t: Type): Value { return this.b.CreateTrunc(v, t); }
  ptrToInt(v: Value): Value { return this.b.CreatePtrToInt(v, this.i64()); }
  intToPtr(v: Value, t: Type): Value { return this.b.CreateIntToPtr(v, t); }
  bitcast(v: Value, t: Type): Value { return this.b.CreateBitCast(v, t); }
  load(t: Type, ptr: Value): Value { return this.b.CreateLoad(t, ptr); }
  store(v: Value, ptr: Value): void { this.b.CreateStore(v, ptr); }
  alloca(t: Type): Value { return this.b.CreateAlloca(t); }
  /** A stack slot at the start of `fn`'s entry block, wherever the builder is: a fixed part of
   *  the frame (an alloca elsewhere would grow the stack each time it runs). */
  entryAlloca(fn: Fn, t: Type): Value {
    const here = this.currentBlock();
    const entry = fn.getEntryBlock();
    const first = entry.getFirstNonPHI();
    if (first) this.b.SetInsertPoint(first);
    else this.b.SetInsertPoint(entry);
    const slot = this.b.CreateAlloca(t);
    this.b.SetInsertPoint(here);
    return slot;
  }
  /** Address of element `i` of an array of `t` at `ptr` (a `t*`). */
  elementPtr(t: Type, ptr: Value, i: number): Value { return this.b.CreateGEP(t, ptr, [this.b.getIntN(64, i)]); }
  elementPtrAt(t: Type, ptr: Value, i: Value): Value { return this.b.CreateGEP(t, ptr, [i]); }
  extract(agg: Value, i: number): Value { return this.b.CreateExtractValue(agg, [i]); }
  insert(agg: Value, v: Value, i: number): Value { return this.b.CreateInsertValue(agg, v, [i]); }
  call(fn: Fn, args: Value[]): Value { return this.b.CreateCall(fn, args); }
  callIndirect(type: FnType, callee: Value, args: Value[]): Value { return this.b.CreateCall(type, callee, args); }
  br(bb: Block): void { this.b.CreateBr(bb); }
  condBr(c: Value, t: Block, f: Block): void { this.b.CreateCondBr(c, t, f); }
  phi(t: Type, incoming: [Value, Block][]): Value {
    const p = this.b.CreatePHI(t, incoming.length);
    for (const [v, bb] of incoming) p.addIncoming(v, bb);
    return p;
  }
  ret(v: Value): void { this.b.CreateRet(v); }
  unreachable(): void { this.b.CreateUnreachable(); }

  // ---- output --------------------------------------------------------------------------------

  /** Throws an internal compiler error when the module is malformed (workaround 5). */
  verify(): void {
    if (llvm.verifyModule(this.mod)) {
      ice('the generated LLVM module failed verification (details above on stderr)');
    }
  }
  print(): string {
    return this.mod.print();
  }
  /** Links the bitcode module at `path` (e.g. the runtime's inlinable functions) into this one;
   *  throws an internal compiler error when it cannot be read or linked. */
  linkBitcode(path: string): void {
    const other = llvm.parseIRFile(path, new llvm.SMDiagnostic(), this.ctx);
    if (!other) ice(`cannot read the bitcode ${path}`);
    if (llvm.Linker.linkModules(this.mod, other)) ice(`cannot link the bitcode ${path} into the program`);
  }
  writeBitcode(path: string): void {
    llvm.WriteBitcodeToFile(this.mod, path);
  }
}
