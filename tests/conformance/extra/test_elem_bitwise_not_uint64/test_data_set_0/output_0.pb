ByJ OпыЗ≈Й3YQ,÷зcWьlEЉўф;”2ЧM&
„±СM