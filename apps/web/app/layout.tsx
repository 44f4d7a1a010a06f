import type { Metadata } from 'next';
import type { ReactNode } from 'react';
import { SiteHeader } from '../components/site-header';
import { readSession } from '../lib/session';
import './globals.css';

export const metadata: Metadata = {
  title: { default: 'Fundus CBR', template: '%s · Fundus CBR' },
  description: 'Case-based reasoning for diabetic retinopathy: find earlier cases similar to a fundus photograph.',
};

export default async function RootLayout({ children }: { children: ReactNode }) {
  // Reading the session cookie renders every page per request, which they are anyway (each asks the API).
  const session = await readSession();
  return (
    <html lang="en">
      <body>
        <a className="skip-link" href="#main">
          Skip to content
        </a>
        <SiteHeader session={session} />
        <main id="main">{children}</main>
      </body>
    </html>
  );
}
