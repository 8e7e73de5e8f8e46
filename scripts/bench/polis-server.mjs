// A peer for scripts/bench-peers: Polis (the npm package
// @boxyhq/saml-jackson, "Polis library") with its in-memory engine, serving
// one SCIM directory over node:http on 127.0.0.1.
//
//   node polis-server.mjs --modules DIR/node_modules --port PORT
//
// --modules is where `npm install @boxyhq/saml-jackson` put the package
// (scripts/bench-peers installs it into a temp dir). Once listening, prints
// one JSON line on stdout: {"scim_url": ".../api/scim/v2.0/<directory id>",
// "token": "<the directory's bearer secret>", "version": "<package version>"}.
//
// The HTTP glue does what Polis's own Next.js route
// (pages/api/scim/v2.0/[...directory]) does: split the path into directory
// id, resource type and resource id, take the bearer secret from the
// Authorization header, parse the JSON body and hand the lot to
// directorySyncController.requests.handle(). Events go to a no-op callback
// (as an embedder without webhooks would configure it); without one, Polis
// logs "Webhook not configured" on stderr for every write.

import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    console.error(`polis-server: ${name} is required`);
    process.exit(2);
  }
  return process.argv[i + 1];
}

const modules = path.resolve(arg('--modules'));
const port = Number(arg('--port'));
const require = createRequire(path.join(modules, 'noop.js'));
const jackson = require('@boxyhq/saml-jackson');
const version = require('@boxyhq/saml-jackson/package.json').version;

const scimPath = '/api/scim/v2.0';
const externalUrl = `http://127.0.0.1:${port}`;
const quiet = () => {};

const { directorySyncController: dsync } = await jackson.controllers({
  externalUrl,
  samlPath: '/api/oauth/saml',
  scimPath,
  db: { engine: 'mem' },
  noAnalytics: true,
  dsync: { callback: async () => {} },
  logger: { info: quiet, warn: console.warn.bind(console), error: console.error.bind(console) },
});

const { data: directory, error } = await dsync.directories.create({
  name: 'bench',
  tenant: 'bench.example',
  product: 'scimgate-bench',
  type: 'generic-scim-v2',
});
if (error) {
  console.error('polis-server: creating the directory failed:', error);
  process.exit(1);
}

function reply(res, status, data) {
  const body = data === undefined ? '' : JSON.stringify(data);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', async () => {
    try {
      const url = new URL(req.url, externalUrl);
      if (!url.pathname.startsWith(scimPath + '/')) {
        return reply(res, 404, { detail: 'Not found' });
      }
      const [directoryId, resourceType, resourceId] = url.pathname
        .slice(scimPath.length + 1)
        .split('/')
        .map(decodeURIComponent);
      const auth = req.headers.authorization || '';
      const apiSecret = auth.toLowerCase().startsWith('bearer ') ? auth.slice(7).trim() : null;
      const raw = Buffer.concat(chunks).toString('utf8');
      const count = url.searchParams.get('count');
      const startIndex = url.searchParams.get('startIndex');
      const { status, data } = await dsync.requests.handle({
        method: req.method,
        body: raw ? JSON.parse(raw) : undefined,
        directoryId,
        resourceType: resourceType || '',
        resourceId,
        apiSecret,
        query: {
          count: count ? parseInt(count, 10) : undefined,
          startIndex: startIndex ? parseInt(startIndex, 10) : undefined,
          filter: url.searchParams.get('filter') || undefined,
        },
      });
      reply(res, status, data);
    } catch (e) {
      reply(res, 500, { detail: String(e && e.message ? e.message : e) });
    }
  });
});
server.keepAliveTimeout = 60_000;

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(
    JSON.stringify({
      // The path without the query string some directory types append.
      scim_url: `${externalUrl}${directory.scim.path.split('?')[0].replace(/\/+$/, '')}`,
      token: directory.scim.secret,
      version,
    }) + '\n',
  );
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
