#!/usr/bin/env node
// The build's last step: the dashboard's browser assets (plain JS, CSS, an icon) are not TypeScript,
// so neither tsc nor the CLI bundle carries them to dist/. The page module reads them from `./assets/`
// beside itself: dist/server/dashboard/ for the library's build, dist/cli/ for the bundled `ballot`
// command (whose one file holds the page module).
import { cpSync } from 'node:fs'

for (const to of ['dist/server/dashboard/assets', 'dist/cli/assets'])
  cpSync('src/server/dashboard/assets', to, { recursive: true })
