#!/usr/bin/env node
// The build's second step: the dashboard's browser assets (plain JS, CSS, an icon) are not TypeScript,
// so tsc does not carry them to dist/; the daemon reads them from beside its compiled page module.
import { cpSync } from 'node:fs'

cpSync('src/server/dashboard/assets', 'dist/server/dashboard/assets', { recursive: true })
