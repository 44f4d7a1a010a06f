// The ICD-10-CM check, table-driven: codes that exist (the whole diabetic eye block of one category, spelled out,
// and the other categories' shapes), and codes that do not, each with the words its message must contain.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DIABETES_CATEGORIES, findIcd10CmProblem } from './icd10-cm.js';

/** The complete E11.3 block as the FY2023+ Tabular List lists it (the other diabetes categories mirror it). */
const E11_EYE_CODES = [
  'E11.311', 'E11.319',
  ...['2', '3', '4'].flatMap((severity) => ['1', '9'].flatMap((oedema) => ['1', '2', '3', '9'].map((eye) => `E11.3${severity}${oedema}${eye}`))),
  ...['1', '2', '3', '4', '5', '9'].flatMap((sixth) => ['1', '2', '3', '9'].map((eye) => `E11.35${sixth}${eye}`)),
  'E11.36',
  'E11.37X1', 'E11.37X2', 'E11.37X3', 'E11.37X9',
  'E11.39',
];

const VALID = [
  ...DIABETES_CATEGORIES.flatMap((category) => [`${category}.3291`, `${category}.3553`, `${category}.37X9`, `${category}.319`]),
  'E11.9', 'E10.65', 'E11.22', 'E13.10', 'H35.81', 'H36', 'Z79.4', 'C4A.0', 'O24.410', 'S05.01XA', 'E10.3491',
];

const INVALID: { code: string; says: RegExp }[] = [
  { code: 'NOTACODE', says: /"NOTACODE" is not well-formed/ },
  { code: '', says: /"" is not well-formed/ },
  { code: 'e11.9', says: /not well-formed.*write it as E11\.9/ },
  { code: 'E113291', says: /not well-formed.*write it as E11\.3291/ },
  { code: ' E11.9', says: /write it as E11\.9/ },
  { code: 'E11.', says: /not well-formed/ },
  { code: 'E11.32911', says: /not well-formed/ },
  { code: '11.9', says: /not well-formed/ },
  { code: 'E1.9', says: /not well-formed/ },
  { code: 'E12.3291', says: /E12 is a WHO ICD-10 diabetes category that ICD-10-CM does not have/ },
  { code: 'E12.9', says: /E12 is a WHO ICD-10/ },
  { code: 'E14.9', says: /E14 is a WHO ICD-10/ },
  { code: 'E11.3', says: /"E11\.3" is incomplete/ },
  { code: 'E11.30', says: /E11\.30 is not a diabetic eye subcategory/ },
  { code: 'E11.38', says: /E11\.38 is not a diabetic eye subcategory/ },
  { code: 'E11.31', says: /not a complete E11\.31 code \(unspecified diabetic retinopathy\)/ },
  { code: 'E11.312', says: /E11\.31 takes a 6th character 1 .* or 9/ },
  { code: 'E11.3111', says: /not a complete E11\.31 code/ },
  { code: 'E11.32', says: /not a complete E11\.32 code \(mild nonproliferative/ },
  { code: 'E11.321', says: /not a complete E11\.32 code/ },
  { code: 'E11.3214', says: /the eye \(1 right, 2 left, 3 bilateral, 9 unspecified\)/ },
  { code: 'E11.3221', says: /not a complete E11\.32 code/ },
  { code: 'E11.3341', says: /not a complete E11\.33 code \(moderate/ },
  { code: 'E11.3561', says: /not a complete E11\.35 code \(proliferative/ },
  { code: 'E11.3500', says: /not a complete E11\.35 code/ },
  { code: 'E11.361', says: /E11\.36 takes nothing after \.36/ },
  { code: 'E11.37', says: /E11\.37 takes "X" and a 7th character/ },
  { code: 'E11.3711', says: /not a complete E11\.37 code/ },
  { code: 'E11.37X4', says: /not a complete E11\.37 code/ },
  { code: 'E11.391', says: /E11\.39 takes nothing after \.39/ },
  { code: 'E09.3569', says: /not a complete E09\.35 code/ },
];

describe('findIcd10CmProblem', () => {
  test('accepts every code of the E11.3 diabetic eye block (76 codes)', () => {
    assert.equal(E11_EYE_CODES.length, 2 + 24 + 24 + 1 + 4 + 1);
    for (const code of E11_EYE_CODES) assert.equal(findIcd10CmProblem(code), null, code);
  });

  for (const code of VALID) {
    test(`accepts ${code}`, () => assert.equal(findIcd10CmProblem(code), null));
  }

  for (const { code, says } of INVALID) {
    test(`refuses ${JSON.stringify(code)}, naming the code`, () => {
      const problem = findIcd10CmProblem(code);
      assert.ok(problem, `${code} was accepted`);
      assert.match(problem, says);
      assert.ok(problem.includes(JSON.stringify(code.slice(0, 24))), problem);
    });
  }

  test('a 6th or 7th character out of range is refused in every diabetes category', () => {
    for (const category of DIABETES_CATEGORIES) {
      for (const rest of ['3281', '3314', '3361', '3571', '37X5', '3191']) {
        assert.ok(findIcd10CmProblem(`${category}.${rest}`), `${category}.${rest}`);
      }
    }
  });
});
