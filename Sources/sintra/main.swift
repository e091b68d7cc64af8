print("sintra")
