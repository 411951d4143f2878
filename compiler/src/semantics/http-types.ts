// Pipeline position: consulted by resolve.ts (type names and constructors) and builtins.ts (the
// HTTP and WebSocket built-ins' signatures). The built-in HTTP types (docs/guide/17-http.md), as if declared by
//   type HttpMethod = GET | POST | PUT | DELETE | PATCH | HEAD | OPTIONS
//   type HttpResponse = { status: Int, headers: String, contentType: String, contentLength: Int,
//                         streamFd: Int, isComplete: Bool, partialBody: String, partialLength: Int }
//   type HttpRequest = { method: HttpMethod, path: String, headers: String, body: String, queryParams: String }
// The runtime (runtime-c/src/http_*.c) reads and builds these records word by word, so the field
// order and the constructor order here are part of the ABI.

import { Bool, Int, Str, adtType, type AdtInfo, type CtorInfo, type Type } from './types.ts';

const NO_SPAN = { start: 0, end: 0 };

function record(name: string, fields: [string, Type][]): AdtInfo {
  const adt: AdtInfo = { name, typeParams: [], ctors: [], record: true, span: NO_SPAN };
  const ctor: CtorInfo = {
    name, adt, tag: 0, unit: false, span: NO_SPAN, validators: [],
    fields: fields.map(([n, type]) => ({ name: n, type, span: NO_SPAN })),
  };
  adt.ctors.push(ctor);
  return adt;
}

export const HTTP_METHOD: AdtInfo = (() => {
  const adt: AdtInfo = { name: 'HttpMethod', typeParams: [], ctors: [], record: false, span: NO_SPAN };
  for (const m of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']) {
    adt.ctors.push({ name: m, adt, tag: adt.ctors.length, unit: true, span: NO_SPAN, fields: [], validators: [] });
  }
  return adt;
})();

export const HTTP_RESPONSE: AdtInfo = record('HttpResponse', [
  ['status', Int], ['headers', Str], ['contentType', Str], ['contentLength', Int],
  ['streamFd', Int], ['isComplete', Bool], ['partialBody', Str], ['partialLength', Int],
]);

export const HTTP_REQUEST: AdtInfo = record('HttpRequest', [
  ['method', adtType(HTTP_METHOD, [])], ['path', Str], ['headers', Str], ['body', Str], ['queryParams', Str],
]);

// The record a message handler of type fn(Int, WebSocketMessage) receives (docs/guide/15-websockets.md):
//   type WebSocketMessage = { type: String, data: String, timestamp: Int }
// type is "text" or "binary"; timestamp the milliseconds since the epoch at receipt. Built by
// runtime-c/src/ws_inbox.c word by word, so the field order is part of the ABI.
export const WEBSOCKET_MESSAGE: AdtInfo = record('WebSocketMessage', [['type', Str], ['data', Str], ['timestamp', Int]]);

/** Every built-in declared type, by name. */
export const BUILTIN_ADTS: readonly AdtInfo[] = [HTTP_METHOD, HTTP_RESPONSE, HTTP_REQUEST, WEBSOCKET_MESSAGE];
