// Preloaded into Portkey's gateway by run.sh (node --import). Two adjustments, nothing else:
//
// 1. Loopback only. start-server.js always listens on every interface at a fixed port (--port=,
//    default 8787). Here any server it starts listens on 127.0.0.1 at a free port instead, and
//    that port is written to $PORTKEY_PORT_FILE.
// 2. Streaming works on Node 20. For stream:true, Portkey 1.15.2 builds `new Response(stream,
//    upstreamFetchResponse)` and then appends x-portkey-* headers to it; the headers it inherits
//    are the fetch response's, which the fetch spec makes immutable, so every streamed request
//    fails with "TypeError: immutable" and HTTP 500 (upstream issues Portkey-AI/gateway#1389 and
//    #1550). Fetch responses are re-wrapped here with a mutable copy of their headers: one
//    Headers copy per upstream call, the body stream is passed through untouched.
import fs from 'node:fs';
import net from 'node:net';

const originalListen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const callback = args.find((a) => typeof a === 'function');
  const portFile = process.env.PORTKEY_PORT_FILE;
  this.once('listening', () => {
    if (!portFile) return;
    fs.writeFileSync(portFile + '.tmp', `${this.address().port}\n`);
    fs.renameSync(portFile + '.tmp', portFile);
  });
  return callback ? originalListen.call(this, 0, '127.0.0.1', callback)
                  : originalListen.call(this, 0, '127.0.0.1');
};

const originalFetch = globalThis.fetch;
const FetchResponse = globalThis.Response;
globalThis.fetch = async (...args) => {
  const res = await originalFetch(...args);
  return new FetchResponse(res.body, {
    status: res.status,
    statusText: res.statusText,
    headers: new Headers(res.headers),
  });
};
