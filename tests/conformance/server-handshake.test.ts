/**
 * Server opening handshake, docs/WEBSOCKET-RUNTIME.md#conformance-cases cases 1–14 (checklist §1.1 S-H1..S-H15, limits §3.2).
 */
import { expect, it } from 'vitest';
import { describeTarget, expectRefused, itNeeds, SHARED_HANDSHAKE_TIMEOUT_MS, useServer } from './harness.ts';
import { selected, SERVER_TARGETS } from './targets.ts';
import { expectFailStrict } from './verdict.ts';
import { acceptFor, buildRequest, RFC_KEY, T, type RawConn } from './wsraw.ts';

async function expectEchoWorks(conn: RawConn) {
  conn.write(T('ping-after-handshake'));
  const m = await conn.nextMessage();
  expect(m.payload.toString()).toBe('ping-after-handshake');
}

for (const target of selected(SERVER_TARGETS)) {
  describeTarget(target, `server handshake [${target.name}]`, () => {
    const h = useServer(target);
    const P = target.policy;

    it('01 valid handshake with the RFC sample key → 101 and the RFC accept value', async () => {
      expect(acceptFor(RFC_KEY)).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
      const c = await h.connect();
      c.write(buildRequest(h.port, { key: RFC_KEY }));
      const head = (await c.readHead())!;
      expect(head.startLine).toMatch(/^HTTP\/1\.1 101\b/);
      expect(head.tokens('Upgrade')).toContain('websocket');
      expect(head.tokens('Connection')).toContain('upgrade');
      expect(head.all('Sec-WebSocket-Accept')).toEqual(['s3pPLMBiTxaQ9kYGzzhZRbK+xOo=']);
      expect(head.get('Sec-WebSocket-Extensions')).toBeUndefined();
      expect(head.get('Sec-WebSocket-Protocol')).toBeUndefined();
      await expectEchoWorks(c);
    });

    it('02 case-insensitive tokens and header names, Connection: keep-alive, Upgrade → 101', async () => {
      const c = await h.connect();
      const key = 'AQIDBAUGBwgJCgsMDQ4PEA==';
      c.write(
        buildRequest(h.port, {
          headers: [
            ['host', `127.0.0.1:${h.port}`],
            ['upgrade', 'WebSocket'],
            ['connection', 'keep-alive, Upgrade'],
            ['sec-websocket-key', key],
            ['sec-websocket-version', '13'],
          ],
        }),
      );
      const head = (await c.readHead())!;
      expect(head.status).toBe(101);
      expect(head.get('Sec-WebSocket-Accept')).toBe(acceptFor(key));
      await expectEchoWorks(c);
    });

    it('03 Connection split over two header lines → 101', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { omit: ['Connection'], extra: [['Connection', 'keep-alive'], ['Connection', 'Upgrade']] }));
      expect((await c.readHead())!.status).toBe(101);
      await expectEchoWorks(c);
    });

    it('04 missing Sec-WebSocket-Key → 400', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { omit: ['Sec-WebSocket-Key'] }));
      await expectRefused(c, [400], 'missing key');
    });

    it('05a key decoding to 15 bytes → 400', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { key: Buffer.alloc(15, 7).toString('base64') }));
      await expectRefused(c, [400], '15-byte key');
    });

    it('05b 24 characters that are not base64 → 400', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { key: '!!!!!!!!!!!!!!!!!!!!!!==' }));
      await expectRefused(c, [400], 'non-base64 key');
    });

    it('06 two Sec-WebSocket-Key headers → 400', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { extra: [['Sec-WebSocket-Key', 'AQIDBAUGBwgJCgsMDQ4PEA==']] }));
      await expectRefused(c, [400], 'duplicate key');
    });

    it('07a Sec-WebSocket-Version: 8 → 426 with Sec-WebSocket-Version: 13', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { omit: ['Sec-WebSocket-Version'], extra: [['Sec-WebSocket-Version', '8']] }));
      const head = await expectRefused(c, P.badVersionStatus, 'version 8');
      if (P.badVersionAdvertises) expect(head.tokens('Sec-WebSocket-Version')).toEqual(['13']);
    });

    it('07b Sec-WebSocket-Version missing → 426 (or 400)', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { omit: ['Sec-WebSocket-Version'] }));
      await expectRefused(c, [426, 400], 'no version');
    });

    it('08a POST → 405 or 400', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { method: 'POST' }));
      await expectRefused(c, [405, 400], 'POST');
    });

    it('08b HTTP/1.0 → 400 (or 505)', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { version: 'HTTP/1.0' }));
      await expectRefused(c, [400, 505], 'HTTP/1.0');
    });

    it('08c missing Upgrade → 400 or 426', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { omit: ['Upgrade'] }));
      await expectRefused(c, [400, 426], 'no Upgrade');
    });

    it('08d Connection: close → 400 or 426', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { omit: ['Connection'], extra: [['Connection', 'close']] }));
      await expectRefused(c, [400, 426], 'Connection: close');
    });

    it('08e Connection: Upgraded (substring, not the token) → 400 or 426', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { omit: ['Connection'], extra: [['Connection', 'Upgraded']] }));
      await expectRefused(c, [400, 426], 'Connection: Upgraded');
    });

    it('09a unknown path → 404; the endpoint with a query string → 101', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { path: '/nope' }));
      await expectRefused(c, [404], 'GET /nope');
      const ok = await h.open({ path: '/?room=a&x=%20' });
      await expectEchoWorks(ok);
    });

    itNeeds(target, ['origins'], '09b disallowed Origin → 403; allowed Origin → 101', async () => {
      const s = await h.startExtra({ path: '/', origins: ['http://good.example'] });
      const bad = await h.connect(s.port);
      bad.write(buildRequest(s.port, { extra: [['Origin', 'http://evil.example']] }));
      await expectRefused(bad, [403], 'Origin evil');
      // Exact comparison, not a prefix/suffix match.
      const sneaky = await h.connect(s.port);
      sneaky.write(buildRequest(s.port, { extra: [['Origin', 'http://good.example.evil.example']] }));
      await expectRefused(sneaky, [403], 'Origin with the allowed one as prefix');
      const good = await h.open({ extra: [['Origin', 'http://good.example']] }, s.port);
      await expectEchoWorks(good);
    });

    itNeeds(target, ['subprotocols'], '10 offer "chat, superchat" → exactly one Sec-WebSocket-Protocol: superchat; unsupported → none', async () => {
      const s = await h.startExtra({ path: '/', subprotocols: ['superchat'] });
      const c = await h.connect(s.port);
      c.write(buildRequest(s.port, { extra: [['Sec-WebSocket-Protocol', 'chat, superchat']] }));
      const head = (await c.readHead())!;
      expect(head.status).toBe(101);
      expect(head.all('Sec-WebSocket-Protocol')).toEqual(['superchat']);
      // The same offer split over two header lines (values combine, §11.3.4).
      const c2 = await h.connect(s.port);
      c2.write(buildRequest(s.port, { extra: [['Sec-WebSocket-Protocol', 'chat'], ['Sec-WebSocket-Protocol', 'superchat']] }));
      expect((await c2.readHead())!.all('Sec-WebSocket-Protocol')).toEqual(['superchat']);
      const c3 = await h.connect(s.port);
      c3.write(buildRequest(s.port, { extra: [['Sec-WebSocket-Protocol', 'chat']] }));
      const head3 = (await c3.readHead())!;
      // Policy: accept without a protocol (python does) or refuse; never pick an unoffered one.
      if (head3.status === 101) expect(head3.get('Sec-WebSocket-Protocol')).toBeUndefined();
      else expect(head3.status).toBeGreaterThanOrEqual(400);
      // A supported offer followed by a non-token, on the same line or the next one (they
      // combine into one list): the offer breaks §4.3's 1#token, so 400 (§4.2.1) and no
      // subprotocol, whichever line it is on.
      for (const extra of [
        [['Sec-WebSocket-Protocol', 'superchat, )']],
        [['Sec-WebSocket-Protocol', 'superchat'], ['Sec-WebSocket-Protocol', ')']],
      ] as [string, string][][]) {
        const bad = await h.connect(s.port);
        bad.write(buildRequest(s.port, { extra }));
        const refused = await expectRefused(bad, [400], `malformed offer ${JSON.stringify(extra)}`);
        expect(refused.get('Sec-WebSocket-Protocol')).toBeUndefined();
      }
    });

    it('11 permessage-deflate offered, compression off → no Sec-WebSocket-Extensions; RSV1 frame → 1002', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { extra: [['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits']] }));
      const head = (await c.readHead())!;
      expect(head.status).toBe(101);
      expect(head.get('Sec-WebSocket-Extensions')).toBeUndefined();
      c.write(T('compressed?', { rsv: 4 }));
      await expectFailStrict(c, 1002);
    });

    it('12a handshake written one byte per write → 101', async () => {
      const c = await h.connect();
      await c.writeChopped(Buffer.from(buildRequest(h.port)), 1);
      expect((await c.readHead())!.status).toBe(101);
      await expectEchoWorks(c);
    });

    it('12b handshake and first frame in one write → the frame is echoed', async () => {
      const c = await h.connect();
      c.write(Buffer.concat([Buffer.from(buildRequest(h.port)), T('same-write')]));
      expect((await c.readHead())!.status).toBe(101);
      expect((await c.nextMessage()).payload.toString()).toBe('same-write');
    });

    it(`13a ${201} header lines → ${P.maxHeaders < 201 ? P.headerLimitStatus.join('/') : '101 (target allows more)'}`, async () => {
      const c = await h.connect();
      const extra: [string, string][] = Array.from({ length: 196 }, (_, i) => [`X-H${i}`, 'v']);
      c.write(buildRequest(h.port, { extra }));
      if (P.maxHeaders < 201) await expectRefused(c, P.headerLimitStatus, '201 headers');
      else expect((await c.readHead())!.status).toBe(101);
    });

    it(`13b 17 KiB of headers in 1 KiB lines → ${P.maxHeaderBytes < 17 * 1024 ? P.headerLimitStatus.join('/') : '101 (no total limit)'}`, async () => {
      const c = await h.connect();
      const extra: [string, string][] = Array.from({ length: 17 }, (_, i) => [`X-Pad${i}`, 'p'.repeat(1024)]);
      c.write(buildRequest(h.port, { extra }));
      if (P.maxHeaderBytes < 17 * 1024) await expectRefused(c, P.headerLimitStatus, '17 KiB of headers');
      else expect((await c.readHead())!.status).toBe(101);
    });

    it('13c request line of 10 KiB → refused', async () => {
      const c = await h.connect();
      c.write(buildRequest(h.port, { path: `/?q=${'a'.repeat(10 * 1024)}` }));
      await expectRefused(c, P.requestLineStatus, '10 KiB request line');
    });

    // S-H12 (checklist §1.1, beyond the §2.5 list): ABNF violations → 400 and close.
    for (const [label, raw] of [
      ['header line without a colon', 'X-No-Colon\r\n'],
      ['NUL byte in a header value', 'X-Nul: a\u0000b\r\n'],
      ['bare CR inside a header value', 'X-Cr: a\rb\r\n'],
      ['obs-fold continuation line', 'X-Fold: a\r\n b\r\n'],
      ['whitespace before the colon', 'X-Space : a\r\n'],
    ] as const) {
      it(`13d malformed request: ${label} → 400`, async () => {
        const c = await h.connect();
        const req = buildRequest(h.port);
        c.write(Buffer.from(req.slice(0, -2) + raw + '\r\n', 'latin1'));
        await expectRefused(c, P.malformedStatus, label);
      });
    }

    it('14 incomplete handshake (slowloris) → TCP closed after the handshake timeout', async () => {
      const c = await h.connect();
      const t0 = performance.now();
      c.write('GET / HTTP/1.1\r\n');
      expect(await c.waitPeerEnd(SHARED_HANDSHAKE_TIMEOUT_MS + 1500), 'server closes the stalled connection').toBe(true);
      const elapsed = performance.now() - t0;
      expect(elapsed).toBeGreaterThan(SHARED_HANDSHAKE_TIMEOUT_MS - 300);
      expect(c.events.filter((e) => e.type === 'frame')).toEqual([]);
    });
  });
}
