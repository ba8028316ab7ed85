// Assertions shared by the JS end-to-end suites.
import assert from 'node:assert/strict';

export function assertRequestId(metadata, what = 'response') {
  assert.equal(typeof metadata?.requestId, 'string', `${what}: $metadata.requestId missing`);
  assert.ok(metadata.requestId.length > 0, `${what}: $metadata.requestId empty`);
}

export function assertOk(resp) {
  assert.equal(resp.$metadata.httpStatusCode, 200);
  assertRequestId(resp.$metadata);
}

/** Awaits `promise`, which must reject with error `name` and HTTP `status`; returns the error. */
export async function expectError(promise, name, status, { ctor, message } = {}) {
  let resp;
  try {
    resp = await promise;
  } catch (err) {
    assert.equal(err.name, name, `expected ${name}, got ${err.name}: ${err.message}`);
    assert.equal(err.$metadata?.httpStatusCode, status,
      `${name}: HTTP status (message: ${err.message})`);
    assertRequestId(err.$metadata, name);
    assert.equal(err.$metadata.attempts, 1, `${name}: the SDK must not have retried`);
    if (ctor) assert.ok(err instanceof ctor, `${name} is not an instance of the SDK's ${ctor.name}`);
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail(`expected ${name} (${status}), but the call succeeded: ${JSON.stringify(resp)}`);
}
