'use server';
// The save form's server action: the photograph behind the upload token becomes a case with its records, as
// the signed-in user (the API checks the role and writes the audit row).
import { readSaveCaseForm, saveUploadedCase, type SaveCaseState } from '../../lib/save-case';
import { readReviseCaseForm, reviseSearchedCase, type ReviseCaseState } from '../../lib/revise-case';
import { requireSession } from '../../lib/session';

export async function saveCaseAction(_previous: SaveCaseState, form: FormData): Promise<SaveCaseState> {
  const returnTo = typeof form.get('returnTo') === 'string' ? String(form.get('returnTo')) : '/search';
  const session = await requireSession(returnTo.startsWith('/search') ? returnTo : '/search');
  const read = readSaveCaseForm(form, session.user.name);
  if ('problem' in read) return { kind: 'refused', code: 'BAD_USER_INPUT', message: read.problem, field: read.field, conflictCaseId: null };
  return saveUploadedCase(read.input, returnTo.startsWith('/search') ? returnTo : '/search');
}

/** The revise form's action: the clinician's reading of the stored query photograph (reviseCase), as the signed-in user. */
export async function reviseCaseAction(_previous: ReviseCaseState, form: FormData): Promise<ReviseCaseState> {
  const returnTo = typeof form.get('returnTo') === 'string' && String(form.get('returnTo')).startsWith('/search') ? String(form.get('returnTo')) : '/search';
  await requireSession(returnTo);
  const read = readReviseCaseForm(form);
  if ('problem' in read) return { kind: 'refused', code: 'BAD_USER_INPUT', message: read.problem, field: read.field };
  return reviseSearchedCase(read.input, returnTo);
}
