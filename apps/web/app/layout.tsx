import type { Metadata } from 'next';
import Link from 'next/link';
import type { ReactNode } from 'react';
import './globals.css';

export const metadata: Metadata = {
  title: { default: 'Fundus CBR', template: '%s · Fundus CBR' },
  description: 'Case-based reasoning for diabetic retinopathy: find earlier cases similar to a fundus photograph.',
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <a className="skip-link" href="#main">
          Skip to content
        </a>
        <header className="site-header">
          <Link href="/" className="brand">
            Fundus CBR
          </Link>
          <nav aria-label="Main">
            <Link href="/search">Similar-case search</Link>
          </nav>
        </header>
        <main id="main">{children}</main>
      </body>
    </html>
  );
}
