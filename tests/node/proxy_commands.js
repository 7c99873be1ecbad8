// node-postgres over the extended protocol through airlock (tests/pg_proxy_commands.rs):
// named statements for the proxy commands, an unnamed Parse/Bind with bound
// parameters for the held UPDATE, then CALL airlock.run(N).
//   node proxy_commands.js hold|run|resend <connection string> [request id]
const { Client } = require('pg');

async function main() {
  const [mode, connectionString, id] = process.argv.slice(2);
  const c = new Client({ connectionString, ssl: false });
  await c.connect();
  if (mode === 'hold') {
    await c.query({ name: 'set_reason', text: "SET airlock.reason = 'driver reason node'" });
    console.log('set ok');
    const r = await c.query({ name: 'show_reason', text: 'SHOW airlock.reason' });
    console.log('reason', Object.values(r.rows[0])[0]);
    try {
      await c.query('UPDATE t SET v = $1 WHERE id = $2', ['node', 4]);
      console.log('UPDATED');
    } catch (e) {
      console.log('SQLSTATE', e.code);
    }
    const reqs = await c.query({ name: 'show_requests', text: 'SHOW airlock.requests' });
    console.log('requests', reqs.rows.length);
  } else if (mode === 'resend') {
    // The approved statement sent again with the same bound parameters runs.
    const r = await c.query('UPDATE t SET v = $1 WHERE id = $2', ['node', 4]);
    console.log('ran', r.rowCount);
  } else {
    await c.query('CALL airlock.run($1)', [Number(id)]);
    console.log('ran');
  }
  const one = await c.query('SELECT $1::int AS one', [1]);
  console.log('still in sync', one.rows[0].one);
  await c.end();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
