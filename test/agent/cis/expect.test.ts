import t, { type Test } from 'tap';
import { describeExpect, meets } from '../../../agent/cis/expect.js';
import { parseNumberish, type ExpectSpec } from '../../../agent/cis/schema.js';

// The CIS expected-value comparisons (agent/cis/expect.ts), operator by operator: for each, values that meet it
// and values that do not, worked out by hand from the rules the module states (lists are comma-separated and
// trimmed; booleans compare case-insensitively; numbers and durations compare by value, durations in seconds; an
// unset value meets only `unset` and `lacks`). undefined is an unset value (no flag, no key, no default).

type Row = [value: string | undefined, want: boolean, why: string];

function table(t: Test, expect: ExpectSpec, rows: Row[]): void {
  for (const [value, want, why] of rows)
    t.equal(meets(value, expect), want, `${JSON.stringify(value)} ${want ? 'meets' : 'fails'} ${expect.op}: ${why}`);
}

t.test('eq', async (t) => {
  table(t, { op: 'eq', value: 'false' }, [
    ['false', true, 'the same string'],
    ['False', true, 'booleans ignore case'],
    ['FALSE', true, 'booleans ignore case'],
    ['true', false, 'the other boolean'],
    ['0', false, 'a number is not a boolean'],
    ['', false, 'empty is not false'],
    [undefined, false, 'unset is never equal'],
  ]);
  table(t, { op: 'eq', value: '0' }, [
    ['0', true, 'the same'],
    ['0s', true, 'a duration of zero seconds is 0'],
    ['0m', true, 'zero minutes too'],
    ['00', true, 'the same number'],
    ['0.0', true, 'the same number'],
    ['1', false, 'another number'],
    ['', false, 'empty is not a number'],
  ]);
  table(t, { op: 'eq', value: '4h0m0s' }, [
    ['4h', true, '4 hours = 14400 s'],
    ['240m', true, '240 minutes = 14400 s'],
    ['14400', true, 'a bare number counts as seconds'],
    ['4h0m1s', false, 'one second more'],
  ]);
  table(t, { op: 'eq', value: 'RBAC' }, [
    ['RBAC', true, 'the same'],
    ['rbac', false, 'strings other than booleans are case-sensitive'],
    ['Node,RBAC', false, 'eq compares the whole value, not list items'],
  ]);
  table(t, { op: 'eq' }, [
    ['', true, 'no value in the spec means the empty string'],
    ['x', false, 'anything else differs'],
  ]);
});

t.test('neq', async (t) => {
  table(t, { op: 'neq', value: '0' }, [
    ['5m', true, 'not zero'],
    ['1', true, 'not zero'],
    ['0', false, 'zero'],
    ['0s', false, 'zero seconds is zero too'],
    [undefined, false, 'unset is not known to differ'],
  ]);
  table(t, { op: 'neq', value: 'true' }, [
    ['false', true, 'the other boolean'],
    ['TRUE', false, 'the same boolean in capitals'],
  ]);
});

t.test('gte, lte, gt, lt', async (t) => {
  table(t, { op: 'gte', value: '5' }, [
    ['5', true, 'equal'],
    ['6', true, 'above'],
    ['4.9', false, 'below'],
    ['-5', false, 'negative'],
    ['5s', true, '5 seconds = 5'],
    ['abc', false, 'not a number'],
    ['', false, 'empty'],
    [undefined, false, 'unset'],
  ]);
  table(t, { op: 'lte', value: '5m' }, [
    ['5m', true, 'equal'],
    ['300', true, '300 s = 5 m'],
    ['4m59s', true, '299 s'],
    ['5m1s', false, '301 s'],
    ['1h', false, '3600 s'],
    ['500ms', true, '0.5 s'],
    ['forever', false, 'not a duration'],
  ]);
  table(t, { op: 'gt', value: '1h' }, [
    ['1h', false, 'equal is not greater'],
    ['61m', true, '3660 s'],
    ['1h0m0.5s', true, '3600.5 s'],
    ['3599', false, 'below'],
  ]);
  table(t, { op: 'lt', value: '10' }, [
    ['9', true, 'below'],
    ['10', false, 'equal is not less'],
    ['10.5', false, 'above'],
    ['9999ms', true, '9.999 s'],
  ]);
});

t.test('set and unset', async (t) => {
  table(t, { op: 'set' }, [
    ['/etc/kubernetes/pki/ca.crt', true, 'a value'],
    ['0', true, 'any value, even zero'],
    ['false', true, 'any value, even false'],
    ['', false, 'empty is not set'],
    [undefined, false, 'unset'],
  ]);
  table(t, { op: 'unset' }, [
    [undefined, true, 'unset'],
    ['', true, 'empty counts as unset'],
    ['x', false, 'a value'],
    ['false', false, 'a value, even false'],
  ]);
});

t.test('has and lacks (comma-separated lists, items trimmed)', async (t) => {
  table(t, { op: 'has', value: 'NodeRestriction' }, [
    ['NodeRestriction', true, 'the only item'],
    ['AlwaysPullImages,NodeRestriction', true, 'the last item'],
    ['NodeRestriction , PodSecurity', true, 'items are trimmed'],
    ['NodeRestrictionX', false, 'items compare whole'],
    ['noderestriction', false, 'items are case-sensitive'],
    ['AlwaysPullImages', false, 'not in the list'],
    ['', false, 'an empty list'],
    [undefined, false, 'unset: nothing is known to be in it'],
  ]);
  table(t, { op: 'lacks', value: 'AlwaysAdmit' }, [
    ['NodeRestriction,PodSecurity', true, 'not in the list'],
    ['AlwaysAdmitX', true, 'items compare whole'],
    ['', true, 'an empty list lacks everything'],
    [undefined, true, 'unset lacks everything'],
    ['NodeRestriction, AlwaysAdmit', false, 'in the list (trimmed)'],
    ['AlwaysAdmit', false, 'the only item'],
  ]);
});

t.test('in (the value is one of a list, compared as scalars)', async (t) => {
  table(t, { op: 'in', values: ['Webhook', 'true', '0'] }, [
    ['Webhook', true, 'listed'],
    ['TRUE', true, 'a boolean, any case'],
    ['0s', true, 'the number zero'],
    ['webhook', false, 'strings are case-sensitive'],
    ['AlwaysAllow', false, 'not listed'],
    ['Webhook,AlwaysAllow', false, 'the whole value must be one of them'],
    [undefined, false, 'unset'],
  ]);
  table(t, { op: 'in' }, [['x', false, 'no list: nothing is in it']]);
});

t.test('subsetOf (every list item is allowed, and there is at least one)', async (t) => {
  const allowed = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384'];
  table(t, { op: 'subsetOf', values: allowed }, [
    ['TLS_AES_128_GCM_SHA256', true, 'one allowed item'],
    ['TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256', true, 'all allowed, any order, trimmed'],
    ['TLS_AES_128_GCM_SHA256,TLS_RSA_WITH_RC4_128_SHA', false, 'one item not allowed'],
    ['tls_aes_128_gcm_sha256', false, 'items are case-sensitive'],
    ['', false, 'an empty list is not a subset here (it means the defaults)'],
    [' , ', false, 'only empty items: nothing listed'],
    [undefined, false, 'unset'],
  ]);
  table(t, { op: 'subsetOf' }, [['x', false, 'no allowed list: nothing is allowed']]);
});

t.test('matches (a regular expression, not anchored unless it says so)', async (t) => {
  table(t, { op: 'matches', value: '^127\\.0\\.0\\.1(:\\d+)?$' }, [
    ['127.0.0.1', true, 'the address'],
    ['127.0.0.1:10249', true, 'with a port'],
    ['0.0.0.0:10249', false, 'another address'],
    ['127.0.0.10', false, 'anchored at the end'],
    [undefined, false, 'unset'],
  ]);
  table(t, { op: 'matches', value: 'Restriction' }, [
    ['NodeRestriction,PodSecurity', true, 'unanchored: anywhere in the value'],
    ['restriction', false, 'case-sensitive'],
  ]);
});

t.test('parseNumberish: numbers, and durations in seconds', async (t) => {
  const cases: [string, number | undefined][] = [
    ['0', 0],
    ['42', 42],
    ['-3', -3],
    ['2.5', 2.5],
    [' 7 ', 7],
    ['90s', 90],
    ['5m', 300],
    ['1h', 3600],
    ['1h30m', 5400],
    ['1h0m0s', 3600],
    ['250ms', 0.25],
    ['1m1ms', 60.001],
    ['0.5h', 1800],
    ['', undefined],
    ['5 m', undefined],
    ['5d', undefined],
    ['5M', undefined],
    ['-5m', undefined],
    ['1e3', undefined],
    ['true', undefined],
  ];
  for (const [s, want] of cases) t.equal(parseNumberish(s), want, JSON.stringify(s));
});

t.test('describeExpect: how each operator reads in a report', async (t) => {
  const cases: [ExpectSpec, string][] = [
    [{ op: 'eq', value: 'true' }, 'true'],
    [{ op: 'neq', value: '0' }, 'not 0'],
    [{ op: 'gte', value: '5' }, '>= 5'],
    [{ op: 'lte', value: '5m' }, '<= 5m'],
    [{ op: 'gt', value: '1' }, '> 1'],
    [{ op: 'lt', value: '10' }, '< 10'],
    [{ op: 'set' }, 'set'],
    [{ op: 'unset' }, 'not set'],
    [{ op: 'has', value: 'NodeRestriction' }, 'includes NodeRestriction'],
    [{ op: 'lacks', value: 'AlwaysAdmit' }, 'does not include AlwaysAdmit'],
    [{ op: 'in', values: ['Webhook', 'Node'] }, 'one of Webhook, Node'],
    [{ op: 'subsetOf', values: ['A', 'B'] }, 'only: A, B'],
    [{ op: 'matches', value: '^x$' }, 'matching /^x$/'],
  ];
  for (const [spec, text] of cases) t.equal(describeExpect(spec), text, spec.op);
  t.equal(
    cases.length,
    13,
    'every operator of the schema (eq neq gte lte gt lt set unset has lacks in subsetOf matches) is covered',
  );
});
