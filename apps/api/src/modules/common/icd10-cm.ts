// ICD-10-CM codes as they enter the system (ingestCase, every importer): well-formed everywhere, and a complete,
// existing code inside the diabetic eye block E08-E13 ".3" that this product is about. Outside that block only the
// form is checked: the full code set (about 74,000 codes) is not shipped, so a well-formed code of another chapter
// is taken as given.
//
// Form: a letter, a digit, a digit or letter (ICD-10-CM has letter third characters: C4A, D3A, M1A, O9A, Z3A),
// then optionally "." and 1-4 letters or digits (the 7th character may follow an "X" placeholder), upper case with
// the dot, as the Tabular List writes codes. Claims files drop the dot ("E113291") and some systems lower-case
// codes; both are refused with the written form to use, never silently rewritten.
//
// The diabetic eye block, from the ICD-10-CM Tabular List (CMS/NCHS, chapter 4, categories E08, E09, E10, E11,
// E13, subcategory .3 "with ophthalmic complications"), as in the FY2023 release and unchanged since (7th-character
// laterality since FY2017, .37X since FY2022); the same structure in all five categories:
//   .311 / .319       unspecified diabetic retinopathy with / without macular edema (no laterality)
//   .32x? .33x? .34x? mild / moderate / severe NPDR; 6th character 1 with, 9 without macular edema
//   .35x?             PDR; 6th character 1 with macular edema, 2 with traction retinal detachment involving the
//                     macula, 3 traction detachment not involving the macula, 4 combined traction and
//                     rhegmatogenous detachment, 5 stable PDR, 9 without macular edema
//                     (? = 7th character, the eye: 1 right, 2 left, 3 bilateral, 9 unspecified)
//   .36               diabetic cataract
//   .37X?             diabetic macular edema, resolved following treatment (7th character the eye as above)
//   .39               other diabetic ophthalmic complication
// E12 (malnutrition-related) and E14 (unspecified) diabetes are WHO ICD-10 categories that ICD-10-CM does not have.

export const DIABETES_CATEGORIES = ['E08', 'E09', 'E10', 'E11', 'E13'] as const;

const WELL_FORMED = /^[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?$/;
const EYE = '1 right, 2 left, 3 bilateral, 9 unspecified';

/** The characters after "E1x.3", by the 5th character: the pattern of what must follow it, and what that is. */
const DIABETIC_EYE_SUBCATEGORIES: Readonly<Record<string, { name: string; rest: RegExp; expected: string }>> = {
  '1': { name: 'unspecified diabetic retinopathy', rest: /^[19]$/, expected: 'a 6th character 1 (with macular edema) or 9 (without), e.g. E11.319' },
  '2': { name: 'mild nonproliferative diabetic retinopathy', rest: /^[19][1239]$/, expected: `a 6th character 1 (with macular edema) or 9 (without) and a 7th, the eye (${EYE}), e.g. E11.3291` },
  '3': { name: 'moderate nonproliferative diabetic retinopathy', rest: /^[19][1239]$/, expected: `a 6th character 1 (with macular edema) or 9 (without) and a 7th, the eye (${EYE}), e.g. E11.3392` },
  '4': { name: 'severe nonproliferative diabetic retinopathy', rest: /^[19][1239]$/, expected: `a 6th character 1 (with macular edema) or 9 (without) and a 7th, the eye (${EYE}), e.g. E11.3413` },
  '5': {
    name: 'proliferative diabetic retinopathy',
    rest: /^[1-59][1239]$/,
    expected: `a 6th character 1 (with macular edema), 2-4 (traction retinal detachment involving / not involving the macula / combined with rhegmatogenous), 5 (stable) or 9 (without macular edema), and a 7th, the eye (${EYE}), e.g. E11.3591`,
  },
  '6': { name: 'diabetic cataract', rest: /^$/, expected: 'nothing after .36' },
  '7': { name: 'diabetic macular edema, resolved following treatment', rest: /^X[1239]$/, expected: `"X" and a 7th character, the eye (${EYE}), e.g. E11.37X1` },
  '9': { name: 'other diabetic ophthalmic complication', rest: /^$/, expected: 'nothing after .39' },
};

const shown = (code: string) => JSON.stringify(code.length > 24 ? `${code.slice(0, 24)}...` : code);

/** Why `code` is not an ICD-10-CM code this product accepts, naming the code; null when it is accepted. */
export function findIcd10CmProblem(code: string): string | null {
  if (!WELL_FORMED.test(code)) {
    const candidate = code.trim().toUpperCase();
    const dotted = /^[A-Z][0-9][0-9A-Z][0-9A-Z]{1,4}$/.test(candidate) ? `${candidate.slice(0, 3)}.${candidate.slice(3)}` : candidate;
    const hint = dotted !== code && WELL_FORMED.test(dotted) && findIcd10CmProblem(dotted) === null ? `; write it as ${dotted}` : '';
    return `ICD-10-CM code ${shown(code)} is not well-formed: expected a letter, a digit, a digit or letter, then optionally "." and 1-4 letters or digits, upper case (e.g. E11.3291)${hint}`;
  }
  const category = code.slice(0, 3);
  if (category === 'E12' || category === 'E14') {
    return `ICD-10-CM code ${shown(code)} does not exist: ${category} is a WHO ICD-10 diabetes category that ICD-10-CM does not have (use E08, E09, E10, E11 or E13)`;
  }
  if (!(DIABETES_CATEGORIES as readonly string[]).includes(category) || !code.startsWith('.3', 3)) return null;
  const fifth = code.charAt(5);
  if (fifth === '') return `ICD-10-CM code ${shown(code)} is incomplete: ${category}.3 heads the diabetic eye codes (.31-.39); give the complete code, e.g. ${category}.3291`;
  const subcategory = DIABETIC_EYE_SUBCATEGORIES[fifth];
  if (!subcategory) return `ICD-10-CM code ${shown(code)} does not exist: ${category}.3${fifth} is not a diabetic eye subcategory (.31-.37 or .39)`;
  const rest = code.slice(6);
  if (subcategory.rest.test(rest)) return null;
  return `ICD-10-CM code ${shown(code)} is not a complete ${category}.3${fifth} code (${subcategory.name}): ${category}.3${fifth} takes ${subcategory.expected}`;
}
