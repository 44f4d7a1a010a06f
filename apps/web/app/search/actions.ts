'use server';
// The save form's server action: the photograph behind the upload token becomes a case with its records, as
// the signed-in user (the API checks the role and writes the audit row).
import { readSaveCaseForm, saveUploadedCase, type SaveCaseState } from '../../lib/save-case';
import { requireSession } from '../../lib/session';

export async function saveCaseAction(_previous: SaveCaseState, form: FormData): Promise<SaveCaseState> {
  const returnTo = typeof form.get('returnTo') === 'string' ? String(form.get('returnTo')) : '/search';
  const session = await requireSession(returnTo.startsWith('/search') ? returnTo : '/search');
  const read = readSaveCaseForm(form, session.user.name);
  if ('problem' in read) return { kind: 'refused', code: 'BAD_USER_INPUT', message: read.problem, field: read.field, conflictCaseId: null };
  return saveUploadedCase(read.input, returnTo.startsWith('/search') ? returnTo : '/search');
}
