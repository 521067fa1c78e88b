'use strict'

// ESLint 9 flat config: `npm run lint`. Only rules that find real problems (unused or undefined
// names, unreachable code, empty blocks, ...); no formatting rules.
const js = require('@eslint/js')
const globals = require('globals')

module.exports = [
  {
    // (ESLint reads only .js, .mjs and .cjs files: native.d.ts and *.node are never linted.)
    ignores: ['target/', 'fuzz/', 'bench/tmp/', '__test__/tmp/', '.armhf/'],
  },
  js.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'commonjs', globals: globals.node },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      'no-unused-vars': ['error', { ignoreRestSiblings: true }],
      'no-new-func': 'error',
      'no-throw-literal': 'error',
      'no-implied-eval': 'error',
      'no-self-compare': 'error',
      'no-template-curly-in-string': 'error',
      'no-unreachable-loop': 'error',
    },
  },
  { files: ['**/*.mjs'], languageOptions: { sourceType: 'module' } },
  {
    // Test files, and the inner jest project of handover.test.js
    files: ['__test__/**/*.test.js', '__test__/handover/jest-project/*.js'],
    languageOptions: { globals: { ...globals.node, ...globals.jest } },
  },
]
